"""Certificate and address helpers shared by every part that makes or checks TLS material.

What lives here, once: EC P-256 keys and their PEM form, a self-signed CA, a leaf certificate
issued by a CA (server, client or both, its names split into IP and DNS SANs), atomic writes of
private (0600) and public (0644) files, and the two address questions TLS policy asks (``is_ip``,
``is_loopback_host``). The cluster CA (``clusterctl.api.auth``) and etcd's own CA
(``clusterctl.store.etcd_tls``) are both built from these; what each keeps of its own is policy:
names, lifetimes, which certificate is still good enough to keep.

Every certificate is back-dated by ``CLOCK_SLACK`` so a host whose clock is a little behind the
issuer's accepts it at once, and a leaf never outlives the CA that signed it.

``cryptography`` is imported inside the certificate functions, not at the top: the node agent
asks ``is_loopback_host`` (registry scheme) and loading cryptography would cost it ~8 MB of RSS
(measured) for nothing, against an agent budget of 50 MB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

#: back-dating of every certificate's notBefore (clock skew between hosts)
CLOCK_SLACK = dt.timedelta(minutes=5)

#: what a leaf certificate is for: its extended key usages
Usage = Literal["server", "client", "both"]


# --- addresses ----------------------------------------------------------------------------------

def is_ip(text: str) -> bool:
    """Is ``text`` an IPv4 or IPv6 address (not a DNS name)?"""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str | None) -> bool:
    """Is ``host`` (a bare host: no port, no brackets) ``localhost`` or a loopback address?"""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """``names`` as (IP addresses, DNS names), each without repeats in a stable order.

    An inventory's ``ansible_host`` or a configured name may be either; a certificate carries
    them as different SAN types."""
    unique = set(names)
    ips = sorted((n for n in unique if is_ip(n)), key=_address_order)
    return ips, sorted(n for n in unique if not is_ip(n))


def _address_order(ip: str) -> tuple[int, bytes]:
    address = ipaddress.ip_address(ip)
    return address.version, address.packed  # IPv4 first, each family in numeric order


# --- keys and certificates ----------------------------------------------------------------------

def new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (what etcd, OpenSSL and Go all read)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_certificate(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def extended_key_usages(usage: Usage) -> set[x509.ObjectIdentifier]:
    """The extended key usages a leaf of ``usage`` carries."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    return {"server": {server}, "client": {client}, "both": {server, client}}[usage]


def self_signed_ca(common_name: str, *, days: int, path_length: int | None = None,
                   now: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new CA key and its self-signed certificate (signs certificates and CRLs, nothing else).

    ``path_length=0`` forbids intermediate CAs below it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _start(now)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue_certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, common_name: str,
                      usage: Usage, names: Iterable[str] = (), organization: str | None = None, days: int,
                      now: dt.datetime | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new key and a leaf certificate for it signed by the CA.

    ``names`` become subject alternative names, IPs as IP SANs and the rest as DNS SANs
    (``split_names``); ``organization`` is the subject's O (Kubernetes reads it as a group)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = new_key()
    subject = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []) \
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    start = _start(now)
    builder = (x509.CertificateBuilder().subject_name(x509.Name(subject))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(ca=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(sorted(extended_key_usages(usage),
                                                           key=lambda oid: oid.dotted_string)), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    ips, dns = split_names(names)
    if ips or dns:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _start(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.timezone.utc)) - CLOCK_SLACK


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


# --- files ---------------------------------------------------------------------------------------

def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Whole file or nothing, with ``mode`` from its first byte (a key is never briefly readable).

    A temporary file beside ``path``, fsynced, then renamed over it: a reader (or a crash) sees the
    old file or the new one, never a torn one, and a file someone loosened gets ``mode`` again."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_private(path: Path, data: bytes) -> None:
    """A key or a token file: 0600."""
    write_atomically(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """A certificate: 0644."""
    write_atomically(path, data, 0o644)


def write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """Key first, certificate last, each atomically: whoever sees the new certificate sees its key."""
    write_private(key_path, pem_key(key))
    write_public(cert_path, pem_certificate(cert))
