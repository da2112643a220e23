"""Modules a library imports at load but uses only on a path we never take: imported on first use.

paho-mqtt imports two modules when it loads for paths no service of ours takes:
- ``urllib.request``, to read proxy settings from the environment, and only when PySocks is
  installed (it is not, in any image or in ``make run``). That import brings ``http.client``,
  ``email`` (parser, headers, ``calendar``, ``locale``), ``tempfile``, ``shutil``, ``bz2`` and
  ``lzma``: 2.2 MB of RSS, measured on the AWOX collector as ``make run`` starts it (30.8 -> 28.6 MB);
- ``hashlib``, for the WebSocket handshake only (we speak MQTT over TCP). Its OpenSSL binding lists
  every digest the library has when it loads, which maps in 0.7 MB more of libcrypto (28.6 -> 27.9).
Issue 11 bounds a collector at 30 MB; the AWOX one, with asyncio, bleak and dbus-fast, was over.

``defer_import`` puts a stand-in under the module's name. The first read of any attribute of it
imports the real module and answers from it, so whoever uses the module gets exactly what it would
have had: ``hasattr(urllib.request, "proxy_bypass")``, ``from urllib.request import urlopen``,
``hashlib.sha256(...)`` all load it then. Nothing is stubbed: this only changes *when* the import
happens. (importlib's LazyLoader cannot do this on 3.11: the import statement itself reads the
module's ``__spec__``, which makes a lazy module load at once.)
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


class _Deferred(types.ModuleType):
    """Stands for a module not imported yet; its first attribute read imports it for real."""

    def __getattr__(self, attribute: str) -> Any:
        # Called only for what the stand-in does not have itself: anything of the real module.
        name = self.__name__
        with _lock:  # two threads reading it first must not both take the stand-in out
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)  # also sets it on its parent package
        return getattr(real, attribute)


def defer_import(name: str) -> None:
    """Import the module ``name`` only when one of its attributes is first read.

    Does nothing if it is already imported (in a process that has used it, or in the tests'
    process), so calling it is always safe; it must come before the importing library to help
    (the package's ``__init__`` defers paho-mqtt's two, before any service imports paho).
    """
    if name in sys.modules:
        return
    parent_name, _, child = name.rpartition(".")
    stand_in = _Deferred(name)
    if parent_name:
        parent = importlib.import_module(parent_name)
        # `import urllib.request` binds `urllib` and reads `request` from it: the package must hold it.
        setattr(parent, child, stand_in)
    sys.modules[name] = stand_in
