"""Float dust in stored energy must not change how many decimals a bill shows.

Energy is summed in floating point (rollups move by deltas), so a kilowatt-hour can come back as
999.9999999999998 Wh. Priced as such at 0.10 EUR/kWh it is 0.09999999999999998 EUR, whose first
significant digit is in the hundredths' place: the rounding rule would then show three decimals
("0.100") for what is exactly ten cents. Energy is rounded to the nano-watt-hour before pricing.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ALL_BACKENDS
from tests.test_costs import client, costs, leaves_add_up, own_tariff, stretch

pytestmark = pytest.mark.backends(*ALL_BACKENDS)
__all__ = ["client"]  # the fixture, imported for the tests below

FLAT_TENTH = {
    "valid_from": "2026-01-01",
    "subscription_euros_per_month": 0,
    "periods": {"flat": 0.10},
    "default_period": "flat",
    "windows": [],
    "export_euros_per_kwh": 0,
}


@pytest.mark.parametrize("watts", [1000.0, 3000.0, 600.0])
def test_whole_kilowatt_hours_are_priced_in_cents(database_url: str, client: TestClient, watts: float) -> None:
    # A reading a minute from 10:00 to 11:00 local at a constant power: 61 readings, 60 segments
    # of 60 s, each watts x 60 / 3600 Wh (16.666... Wh at 1000 W, not a binary fraction).
    # The hour holds watts x 1 h: 1, 3 and 0.6 kWh, at 0.10 EUR/kWh 0.10, 0.30 and 0.06 EUR; two
    # significant digits take 2 decimals for the first two, 3 for 0.06 ("0.060").
    own_tariff(client, "Flat tenth", [FLAT_TENTH], "2026-01-01")
    stretch(database_url, "2026-03-10T10:00", "2026-03-10T11:00", watts)
    report: dict[str, Any] = costs(client, start="2026-03-10", bucket="day", count=1, subscription="false")
    leaves_add_up(report)
    expected = {1000.0: "0.10", 3000.0: "0.30", 600.0: "0.060"}[watts]
    assert report["decimals"] == len(expected) - 2
    assert report["shown"] == expected
    (bucket,) = report["buckets"]
    (part,) = bucket["parts"]
    assert part["shown"] == expected
    assert part["kwh"] == pytest.approx(watts / 1000)
