"""Wiring: poll the plug's status, publish readings, switch the relay on ``.../set``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from citizenwatt_common.collector import CollectorRuntime, DeviceUnavailable

from .decoder import STATUS_REQUEST, SWITCH_OFF, SWITCH_ON, FrameAssembler, FrameRejected, decode_status_frame
from .settings import AwoxSettings
from .transport import PlugLink, open_bleak

log = logging.getLogger(__name__)


def run_plug(runtime: CollectorRuntime, open_link: Callable[[str], PlugLink] = open_bleak) -> None:
    asyncio.run(_run(runtime, open_link))


async def _run(runtime: CollectorRuntime, open_link: Callable[[str], PlugLink]) -> None:
    settings = runtime.settings
    assert isinstance(settings, AwoxSettings)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[bytes] = asyncio.Queue()
    set_topic = runtime.publisher.topics.set(settings.sensor_id)

    def on_set(payload: bytes) -> None:
        wanted = payload.strip().upper()
        if wanted in (b"ON", b"OFF"):
            loop.call_soon_threadsafe(commands.put_nowait, SWITCH_ON if wanted == b"ON" else SWITCH_OFF)
        else:
            log.warning("ignoring %r on %s: expected ON or OFF", payload[:20], set_topic)

    runtime.publisher.subscribe(set_topic, on_set)
    while not runtime.stop_event.is_set():
        if not settings.awox_address:
            runtime.device_failed(DeviceUnavailable("CW_AWOX_ADDRESS is not set: give the plug's Bluetooth address"))
            continue
        try:
            await _session(runtime, settings, open_link(settings.awox_address), commands)
        except (OSError, TimeoutError, ConnectionError, RuntimeError) as exc:
            where = f"AWOX plug {settings.awox_address}"
            runtime.device_failed(
                DeviceUnavailable(f"{where}: {exc or type(exc).__name__}; is it powered and in range?")
            )
        except Exception as exc:
            runtime.device_failed(DeviceUnavailable(f"AWOX plug {settings.awox_address}: {exc}"))


async def _session(
    runtime: CollectorRuntime, settings: AwoxSettings, link: PlugLink, commands: asyncio.Queue[bytes]
) -> None:
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    assembler = FrameAssembler()

    def on_chunk(chunk: bytes) -> None:
        frame = assembler.feed(chunk)
        if frame is not None:
            frames.put_nowait(frame)

    await link.connect(on_chunk)
    try:
        runtime.device_ok()
        next_poll = time.monotonic()
        while not runtime.stop_event.is_set():
            while not commands.empty():
                await link.send(commands.get_nowait())
            if time.monotonic() >= next_poll:
                await link.send(STATUS_REQUEST)
                await _publish_status(runtime, settings, frames)
                next_poll += settings.period_seconds
            try:
                command = await asyncio.wait_for(commands.get(), timeout=max(0.0, next_poll - time.monotonic()))
                await link.send(command)
                await link.send(STATUS_REQUEST)  # publish the new relay state at once
                await _publish_status(runtime, settings, frames)
            except TimeoutError:
                pass
    finally:
        await link.disconnect()


async def _publish_status(runtime: CollectorRuntime, settings: AwoxSettings, frames: asyncio.Queue[bytes]) -> None:
    deadline = time.monotonic() + settings.awox_answer_timeout_seconds
    while True:
        frame = await asyncio.wait_for(frames.get(), timeout=max(0.01, deadline - time.monotonic()))
        status = decode_status_frame(frame)
        if isinstance(status, FrameRejected):
            if frame[:3] != b"\x0f\x04\x03":  # switch confirmations are expected, not errors
                log.warning("AWOX frame refused: %s", status.reason)
                runtime.publisher.publish_extra(
                    runtime.publisher.topics.event(settings.sensor_id), json.dumps({"error": status.reason})
                )
            continue
        runtime.publish(runtime.reading(status.power_w, voltage=float(status.voltage), state=status.relay_on))
        return
