"""What every collector shares: settings, the buffered publisher and the run loop."""

from .publisher import ReadingPublisher
from .runtime import CollectorRuntime, CollectorSettings, DeviceUnavailable

__all__ = ["CollectorRuntime", "CollectorSettings", "DeviceUnavailable", "ReadingPublisher"]
