"""AES-128-ECB decryption of one 16-byte block, with the OpenSSL the interpreter has already loaded.

Why not the ``cryptography`` package: its module, with the OpenSSL it links in, added 7 to 8 MB of
RSS, a quarter of a collector's 30 MB (issue 11), for one block every few seconds. Python's
``hashlib`` (which paho-mqtt imports anyway) has the system's libcrypto mapped in every process
(OpenSSL 3 on Debian 12, the images' base), so calling its EVP cipher functions costs only ctypes
(about 0.6 MB). Where that library cannot be reached (a Python built without OpenSSL, or with it
linked in statically), ``cryptography`` is imported instead, on first use. Both give the same
plaintext (tests/test_collector_nrf24.py checks them against FIPS-197's example and each other).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

BLOCK_BYTES = 16
KEY_BYTES = 16

_lock = threading.Lock()
_decrypt: Callable[[bytes, bytes], bytes] | None = None


def decrypt_block(block: bytes, key: bytes) -> bytes:
    """The plaintext of one AES-128 block (ECB: the sensor's format, one block per packet)."""
    if len(key) != KEY_BYTES or len(block) != BLOCK_BYTES:
        # OpenSSL reads exactly 16 key bytes: a shorter key must never reach it.
        raise ValueError(f"AES-128 needs a {KEY_BYTES}-byte key and {BLOCK_BYTES}-byte blocks")
    return _backend()(block, key)


def backend_name() -> str:
    return getattr(_backend(), "backend", "?")


# FIPS-197 appendix C.1 (AES-128): this ciphertext under key 00 01 .. 0f is 00 11 22 .. ff.
_KNOWN_KEY = bytes(range(16))
_KNOWN_CIPHERTEXT = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
_KNOWN_PLAINTEXT = bytes.fromhex("00112233445566778899aabbccddeeff")


def passes_known_answer(decrypt: Callable[[bytes, bytes], bytes]) -> bool:
    """Whether a backend decrypts FIPS-197's example right. The ctypes binding is only run on the
    machines the tests run on; on another architecture or OpenSSL a wrong result would be silent
    (garbage readings), so a backend is checked once before it is trusted."""
    try:
        return decrypt(_KNOWN_CIPHERTEXT, _KNOWN_KEY) == _KNOWN_PLAINTEXT
    except (OSError, RuntimeError, MemoryError, ValueError):
        return False


def _backend() -> Callable[[bytes, bytes], bytes]:
    global _decrypt
    with _lock:
        if _decrypt is None:
            try:
                candidate = _openssl_in_process()
            except (OSError, AttributeError, ImportError):
                candidate = None
            _decrypt = candidate if candidate is not None and passes_known_answer(candidate) else _cryptography()
        return _decrypt


def _openssl_in_process() -> Callable[[bytes, bytes], bytes]:
    import _hashlib  # the interpreter's OpenSSL binding: a shared module linked to libcrypto

    # dlsym on this handle also searches the libraries it depends on, libcrypto among them.
    lib = ctypes.CDLL(_hashlib.__file__)
    pointer, c_int = ctypes.c_void_p, ctypes.c_int
    lib.EVP_CIPHER_CTX_new.argtypes, lib.EVP_CIPHER_CTX_new.restype = [], pointer
    lib.EVP_CIPHER_CTX_free.argtypes, lib.EVP_CIPHER_CTX_free.restype = [pointer], None
    lib.EVP_aes_128_ecb.argtypes, lib.EVP_aes_128_ecb.restype = [], pointer
    lib.EVP_DecryptInit_ex.argtypes = [pointer, pointer, pointer, ctypes.c_char_p, ctypes.c_char_p]
    lib.EVP_DecryptInit_ex.restype = c_int
    lib.EVP_CIPHER_CTX_set_padding.argtypes, lib.EVP_CIPHER_CTX_set_padding.restype = [pointer, c_int], c_int
    lib.EVP_DecryptUpdate.argtypes = [pointer, pointer, ctypes.POINTER(c_int), ctypes.c_char_p, c_int]
    lib.EVP_DecryptUpdate.restype = c_int
    lib.EVP_DecryptFinal_ex.argtypes = [pointer, pointer, ctypes.POINTER(c_int)]
    lib.EVP_DecryptFinal_ex.restype = c_int
    cipher = lib.EVP_aes_128_ecb()
    if not cipher:
        raise OSError("this libcrypto has no AES-128-ECB")

    def decrypt(block: bytes, key: bytes) -> bytes:
        context = lib.EVP_CIPHER_CTX_new()
        if not context:
            raise MemoryError("EVP_CIPHER_CTX_new failed")
        try:
            # Room for one block more than the input, as EVP_DecryptUpdate may write.
            out = ctypes.create_string_buffer(2 * BLOCK_BYTES)
            start = ctypes.addressof(out)
            written, final = c_int(0), c_int(0)
            ok = (
                lib.EVP_DecryptInit_ex(context, cipher, None, key, None) == 1
                and lib.EVP_CIPHER_CTX_set_padding(context, 0) == 1  # one raw block, no PKCS#7
                and lib.EVP_DecryptUpdate(context, start, ctypes.byref(written), block, len(block)) == 1
                and lib.EVP_DecryptFinal_ex(context, start + written.value, ctypes.byref(final)) == 1
            )
            if not ok or written.value + final.value != BLOCK_BYTES:
                raise RuntimeError("OpenSSL could not decrypt the block")
            return out.raw[:BLOCK_BYTES]
        finally:
            lib.EVP_CIPHER_CTX_free(context)

    decrypt.backend = "openssl"  # type: ignore[attr-defined]
    return decrypt


def _cryptography() -> Callable[[bytes, bytes], bytes]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    def decrypt(block: bytes, key: bytes) -> bytes:
        decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305 (the sensor's format)
        return decryptor.update(block) + decryptor.finalize()

    decrypt.backend = "cryptography"  # type: ignore[attr-defined]
    return decrypt
