"""Secrets encrypted at rest: what the store sees of a Secret is ciphertext.

Kubernetes encrypts whole Secret objects with a configured provider (``aescbc``/``aesgcm``/kms);
we do the same with AES-256-GCM: before the store sees a Secret, the complete object (data,
stringData, annotations such as kubectl's last-applied copy, which repeats the values) is
serialized and sealed; the stored value keeps only ``apiVersion``, ``kind`` and the envelope
``{"keyId", "ciphertext"}``. The store key is the AEAD's associated data, so ciphertext cannot be
moved to another object. On read the API server opens it again; every other kind passes through.

The key is 32 random bytes in a file named by the control-plane config (created at init, mode 0600).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clusterctl.api.errors import ApiError

ENVELOPE = "clusterctl.io/encrypted"


class SecretCodec:
    def __init__(self, key: bytes | None, *, key_id: str = "k1"):
        self._aead = AESGCM(key) if key else None
        self.key_id = key_id

    @classmethod
    def from_file(cls, path: Path | None) -> "SecretCodec":
        if path is None:
            return cls(None)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(AESGCM.generate_key(bit_length=256)))
        key = base64.b64decode(path.read_bytes().strip())
        if len(key) != 32:
            raise ValueError(f"secrets encryption key {path} must hold 32 base64-encoded bytes")
        return cls(key)

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    def seal(self, key: str, obj: dict) -> dict:
        if self._aead is None:
            return obj
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, orjson.dumps(obj), key.encode())
        return {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "Secret"),
                ENVELOPE: {"keyId": self.key_id, "ciphertext": base64.b64encode(nonce + ct).decode()}}

    def open(self, key: str, stored: dict) -> dict:
        envelope = stored.get(ENVELOPE)
        if envelope is None:
            return stored
        if self._aead is None:
            raise ApiError(500, "InternalError", f"secret {key} is encrypted but no encryption key is configured")
        try:
            blob = base64.b64decode(envelope["ciphertext"])
            return orjson.loads(self._aead.decrypt(blob[:12], blob[12:], key.encode()))
        except (InvalidTag, KeyError, ValueError) as exc:
            raise ApiError(500, "InternalError", f"secret {key} cannot be decrypted with the configured key") from exc
