"""The BLE link to the plug, through bleak (BlueZ over D-Bus on the Pi). Tests replace the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

SERVICE_UUID = "0000fff0-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000fff3-0000-1000-8000-00805f9b34fb"


class PlugLink(Protocol):
    async def connect(self, on_chunk: Callable[[bytes], None]) -> None: ...
    async def send(self, frame: bytes) -> None: ...
    async def disconnect(self) -> None: ...


class BleakPlugLink:
    def __init__(self, address: str) -> None:
        from bleak import BleakClient  # imported here: only the Pi needs BlueZ

        self._client = BleakClient(address)

    async def connect(self, on_chunk: Callable[[bytes], None]) -> None:
        await self._client.connect()
        service = self._client.services.get_service(SERVICE_UUID)
        if service is None:
            raise ConnectionError(f"no service {SERVICE_UUID}: is this an AWOX SMP-B16?")
        # Which characteristic answers is not documented: listen to every one that notifies.
        for characteristic in service.characteristics:
            if "notify" in characteristic.properties:
                await self._client.start_notify(characteristic, lambda _c, data: on_chunk(bytes(data)))

    async def send(self, frame: bytes) -> None:
        await self._client.write_gatt_char(WRITE_UUID, frame, response=False)

    async def disconnect(self) -> None:
        await self._client.disconnect()


def open_bleak(address: str) -> Any:
    return BleakPlugLink(address)
