"""Ed25519 keys in OpenSSH format, made in-process (no ssh-keygen fork per host).

The lab needs one client key per lab dir (``DIR/id_ed25519``, what the inventory points at) and
one host key per host (written into the host's /etc overlay, so it survives stop/start and is
what ``DIR/known_hosts`` records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes
    public_openssh: str  # "ssh-ed25519 AAAA..." without a comment

    @classmethod
    def generate(cls) -> KeyPair:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return cls(private, public.decode())

    def write(self, private_path: Path, comment: str) -> None:
        """Write ``private_path`` (0600) and ``private_path.pub``."""
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.private_openssh)
        os.chmod(private_path, 0o600)
        Path(f"{private_path}.pub").write_text(f"{self.public_openssh} {comment}\n")


def read_public_key(private_path: Path) -> str:
    """The "ssh-ed25519 AAAA..." public half of a private key written by ``KeyPair.write``."""
    key = serialization.load_ssh_private_key(private_path.read_bytes(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def ensure_client_key(private_path: Path, comment: str) -> str:
    """Create the lab's client key if missing (kept across ups); return its public half."""
    if private_path.exists():
        return read_public_key(private_path)
    pair = KeyPair.generate()
    pair.write(private_path, comment)
    return pair.public_openssh
