"""etcd's transport security: its own CA, member and client certificates, and the client's TLS policy.

etcd runs as kubeadm runs it: ``https`` client and peer URLs, ``--client-cert-auth`` and
``--peer-client-cert-auth``, every member with one certificate for serving clients and talking to
peers, the API servers with a client certificate. All of them are signed by an **etcd CA of its
own**, not the cluster CA, because etcd's client-cert-auth lets in *any* certificate its trusted
CA signed, with full read/write on every key: the cluster CA also signs the API server's serving
certificate (and may sign node client certificates), and none of those should open the store.

Files in one directory (``EtcdCA(directory)``), private keys 0600, written atomically
(keys, certificates and file writes come from ``clusterctl.pki``, shared with the cluster CA):
``ca.crt``/``ca.key``; ``<stem>.crt``/``<stem>.key`` per issued certificate (bootstrap uses
``member`` for the host's etcd member and ``apiserver-etcd-client`` for its API server).
Issuing is idempotent: a certificate that already exists, matches its key, was signed by this
CA, covers the wanted names and has more than ``RENEW_BEFORE`` left is kept (a bootstrap rerun
changes nothing); otherwise it is made again. Member certificates carry serverAuth *and*
clientAuth: peers present them as clients, and etcd 3.4's JSON gateway dials its own gRPC
server with them. They all have the CN ``clusterctl-etcd-member`` (the member's name is a DNS
SAN), the only CN the peer port admits, so the API server's client certificate opens the store
but cannot pose as a member.

Client policy (``insecure_endpoint_problem``): a plain ``http://`` endpoint is accepted only on
loopback, where nothing crosses a network.

``python -m clusterctl.store.etcd_tls DIR ca|member|client ...`` is what the bootstrap playbook
runs on each control-plane host; it prints ``CHANGED <file>`` for what it (re)made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import ssl
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clusterctl import pki
from clusterctl.pki import is_loopback_host
from clusterctl.store.base import StoreError

__all__ = ["CA_DAYS", "LEAF_DAYS", "MEMBER_CN", "RENEW_BEFORE", "ClientTLS", "EtcdCA", "EtcdTLSError", "MemberTLS",
           "client_ssl_context", "insecure_endpoint_problem", "is_loopback_host", "main"]

CA_DAYS = 3650
#: every member certificate's CN: the peer port admits only it (``--peer-cert-allowed-cn``), so a
#: client certificate of the same CA (the API server's) cannot act as a peer
MEMBER_CN = "clusterctl-etcd-member"
LEAF_DAYS = 1825
#: a certificate with less than this left is issued again by the next bootstrap run
RENEW_BEFORE = dt.timedelta(days=180)


class EtcdTLSError(StoreError):
    """etcd's certificates could not be made or read, or a TLS setting is unsafe or incomplete."""


@dataclass(frozen=True)
class ClientTLS:
    """What an etcd client presents and trusts: the etcd CA, its certificate and key."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None

    def store_options(self) -> dict[str, str]:
        """Keyword arguments for ``EtcdStore`` (and keys of the store config)."""
        options = {"ca_file": self.ca_file}
        if self.cert_file:
            options.update(cert_file=self.cert_file, key_file=self.key_file or self.cert_file)
        return options

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca_file, self.cert_file, self.key_file)


@dataclass(frozen=True)
class MemberTLS:
    """One etcd member's certificate (serving and peer) and the CA it trusts for both."""

    ca_file: str
    cert_file: str
    key_file: str

    def etcd_args(self) -> list[str]:
        """etcd flags: TLS on the client and peer ports, client certificates required on both."""
        return ["--cert-file", self.cert_file, "--key-file", self.key_file,
                "--trusted-ca-file", self.ca_file, "--client-cert-auth",
                "--peer-cert-file", self.cert_file, "--peer-key-file", self.key_file,
                "--peer-trusted-ca-file", self.ca_file, "--peer-client-cert-auth",
                "--peer-cert-allowed-cn", MEMBER_CN]


def client_ssl_context(ca_file: str | None, cert_file: str | None = None,
                       key_file: str | None = None) -> ssl.SSLContext:
    """A client context that verifies etcd against ``ca_file`` and presents ``cert_file``.

    One context serves every connection of a client (its pooled connections and watch streams)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise EtcdTLSError(f"etcd TLS: {exc.filename or exc}: no such file "
                           f"(store ca_file={ca_file}, cert_file={cert_file}, key_file={key_file})") from exc
    except (ssl.SSLError, OSError) as exc:
        raise EtcdTLSError(f"etcd TLS: cannot load ca_file={ca_file}, cert_file={cert_file}, "
                           f"key_file={key_file}: {exc}") from exc
    return context


def insecure_endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` must not be used as is, or None: plain http is for loopback only."""
    split = urllib.parse.urlsplit(endpoint)
    if split.scheme == "https":
        return None
    if split.scheme != "http":
        return f"etcd endpoint {endpoint!r}: expected an https:// (or, on loopback, http://) URL"
    if is_loopback_host(split.hostname):
        return None
    return (f"etcd endpoint {endpoint} is plain http on a network address: every object and Secret "
            f"would cross the network unencrypted and anyone reaching it could write the store; "
            f"use https://{split.netloc} with the etcd CA and a client certificate "
            f"(store ca_file, cert_file, key_file), or an etcd on loopback")


# --- the etcd CA and what it issues -------------------------------------------------------------

class EtcdCA:
    """The etcd CA in ``directory`` (made by ``ensure()`` if absent) and the certificates it issues."""

    def __init__(self, directory: str | os.PathLike, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self.directory = Path(directory)
        self._clock = clock

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    def ensure(self) -> bool:
        """Make the CA unless it exists; True if it was made."""
        if self.ca_file.exists() and self.ca_key_file.exists():
            self._load()
            return False
        if self.ca_file.exists() or self.ca_key_file.exists():
            raise EtcdTLSError(f"etcd CA in {self.directory}: only one of ca.crt and ca.key exists; "
                               f"restore the other (every member trusts this CA) or remove both to start over")
        cert, key = pki.self_signed_ca("clusterctl-etcd-ca", days=CA_DAYS, path_length=0, now=self._clock())
        pki.write_pair(self.ca_file, self.ca_key_file, cert, key)
        return True

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
        except (OSError, ValueError) as exc:
            raise EtcdTLSError(f"etcd CA in {self.directory} is unreadable: {exc}") from exc
        if cert.public_key() != key.public_key():
            raise EtcdTLSError(f"etcd CA in {self.directory}: ca.key does not belong to ca.crt")
        return cert, key  # type: ignore[return-value]

    def issue_member(self, stem: str, *, name: str, addresses: list[str] = (),
                     dns_names: list[str] = ()) -> tuple[MemberTLS, bool]:
        """A member's serving + peer certificate, valid for its addresses, 127.0.0.1 and localhost.

        An address that is not an IP (an inventory's ``ansible_host`` may be a DNS name) becomes a DNS name."""
        changed = self._issue(stem, common_name=MEMBER_CN, usage="both",
                              names=["127.0.0.1", "localhost", name, *dns_names, *addresses])
        return MemberTLS(str(self.ca_file), str(self.directory / f"{stem}.crt"), str(self.directory / f"{stem}.key")), changed

    def issue_client(self, stem: str, *, common_name: str) -> tuple[ClientTLS, bool]:
        """A client certificate (clientAuth only: it cannot serve as an etcd member)."""
        changed = self._issue(stem, common_name=common_name, usage="client", names=[])
        return ClientTLS(str(self.ca_file), str(self.directory / f"{stem}.crt"), str(self.directory / f"{stem}.key")), changed

    def _issue(self, stem: str, *, common_name: str, usage: pki.Usage, names: list[str]) -> bool:
        self.ensure()
        ca_cert, ca_key = self._load()
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        if self._still_good(cert_path, key_path, ca_cert, common_name=common_name, usage=usage, names=names):
            return False
        cert, key = pki.issue_certificate(ca_cert, ca_key, common_name=common_name, usage=usage, names=names,
                                          days=LEAF_DAYS, now=self._clock())
        pki.write_pair(cert_path, key_path, cert, key)
        return True

    def _still_good(self, cert_path: Path, key_path: Path, ca_cert: x509.Certificate, *, common_name: str,
                    usage: pki.Usage, names: list[str]) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        except (OSError, ValueError):
            return False
        if cert.public_key() != key.public_key() or cert.issuer != ca_cert.subject:
            return False
        subject_cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not subject_cns or subject_cns[0].value != common_name:
            return False
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        if cert.not_valid_after_utc - self._clock() < RENEW_BEFORE:
            return False
        try:
            have_usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            return False
        if have_usages != pki.extended_key_usages(usage):
            return False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
            have_dns = set(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            have_ips, have_dns = set(), set()
        if key_path.stat().st_mode & 0o077:
            os.chmod(key_path, 0o600)  # a key someone loosened is tightened, not reissued
        ips, dns = pki.split_names(names)
        return set(ips) <= have_ips and set(dns) <= have_dns


# --- what bootstrap runs on a control-plane host ------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterctl.store.etcd_tls",
                                     description="Make etcd's CA, member and client certificates (idempotent).")
    parser.add_argument("directory", help="the etcd PKI directory (ca.crt, ca.key, <stem>.crt, <stem>.key)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("ca", help="make the etcd CA unless it exists")
    member = actions.add_parser("member", help="this host's member certificate (serving + peer)")
    member.add_argument("--stem", default="member")
    member.add_argument("--name", required=True, help="the member's name (also a DNS SAN)")
    member.add_argument("--address", action="append", default=[],
                        help="an address (IP or DNS name) peers and clients use to reach this member")
    member.add_argument("--dns-name", action="append", default=[])
    client = actions.add_parser("client", help="a client certificate (e.g. the API server's)")
    client.add_argument("--stem", default="apiserver-etcd-client")
    client.add_argument("--common-name", default="clusterctl-apiserver-etcd-client")
    args = parser.parse_args(argv)
    ca = EtcdCA(args.directory)
    try:
        if args.action == "ca":
            if ca.ensure():
                print(f"CHANGED {ca.ca_file}")
        elif args.action == "member":
            tls, changed = ca.issue_member(args.stem, name=args.name, addresses=args.address,
                                           dns_names=args.dns_name)
            if changed:
                print(f"CHANGED {tls.cert_file}")
        else:
            tls, changed = ca.issue_client(args.stem, common_name=args.common_name)
            if changed:
                print(f"CHANGED {tls.cert_file}")
    except (EtcdTLSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
