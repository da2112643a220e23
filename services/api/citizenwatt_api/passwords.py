"""Password hashing with scrypt (standard library): slow on purpose, salted, parameters stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class VerifiedPasswords:
    """Remembers which password last matched each stored hash, so a legacy script that sends its login
    and password with every request pays scrypt once, not on every call.

    What is kept is an HMAC of the password under a key drawn at start and never written anywhere,
    filed under the stored hash it matched: memory only, gone with the process. The database keeps
    scrypt hashes as before. A password change writes a new hash (new salt), so the old entry can
    never match again; a removed account has no hash to look up; a wrong password misses and pays
    the full scrypt price (and the login throttle) as before.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._key = secrets.token_bytes(32)
        self._max_entries = max_entries
        self._known: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _fingerprint(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode(), hashlib.sha256).digest()

    def verify(self, password: str, stored: str) -> bool:
        fingerprint = self._fingerprint(password)
        with self._lock:
            known = self._known.get(stored)
        if known is not None and hmac.compare_digest(known, fingerprint):
            return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            self._known[stored] = fingerprint
            self._known.move_to_end(stored)
            while len(self._known) > self._max_entries:
                self._known.popitem(last=False)
        return True
