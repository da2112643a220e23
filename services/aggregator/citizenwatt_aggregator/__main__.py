"""Start command: ``python -m citizenwatt_aggregator`` (settings from CW_* environment variables)."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from citizenwatt_common.logs import setup_logging
from citizenwatt_common.schema import StorageError

from .health import serve_health
from .service import Aggregator
from .settings import AggregatorSettings
from .writer import WriterGone

log = logging.getLogger("citizenwatt_aggregator")


def main() -> None:
    settings = AggregatorSettings()
    setup_logging(settings.log_level)
    aggregator = Aggregator(settings)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: finishing the current batch, then stopping", signal.Signals(signum).name)
        aggregator.stop_event.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = None
    if settings.health_port:
        server = serve_health(
            settings.health_port, lambda: (aggregator.health()["status"] == "ok", aggregator.health_json())
        )
    try:
        aggregator.run()
    except StorageError as exc:
        # Not an outage that retrying would cure: say what to fix, once, and stop.
        log.critical("%s", exc)
        sys.exit(2)
    except WriterGone as exc:
        # Killed (by the OOM killer, say): what was not acknowledged goes to the next run.
        log.critical("%s: stopping; unacknowledged messages will be redelivered to the next run", exc)
        sys.exit(1)
    finally:
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    main()
