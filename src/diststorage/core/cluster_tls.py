"""Mutual TLS on every gRPC link of the cluster, under one cluster CA.

What ``diststorage cluster init DIR`` writes, and why this shape::

    DIR/            0700
    ├── ca.pem      0600  the cluster CA's certificate (ECDSA P-256, 10 years)
    └── ca.key      0600  its private key (PKCS#8 PEM)

Each daemon given ``--cluster-dir DIR`` issues itself, at start, a leaf certificate signed by
that CA, kept in memory only (a leaf key never touches the disk): subject CN ``gateway:<id>`` or
``node:<id>`` (its identity, as in its data folder), and the DNS name ``CLUSTER_NAME`` that every
client checks instead of the address it dials (``grpc.ssl_target_name_override``), so a
certificate need not list the addresses a node is reached at, which loopback, Kubernetes pod IPs
and compose service names all change. Servers require a client certificate from the same CA
(``require_client_auth``); clients trust only that CA. So a process without DIR can neither
call a node's ChunkService nor a gateway's Inventory service, nor read their traffic.

CA certificate and key, rather than one shared cluster certificate and key: with one shared
key every daemon would present the same identity, and a node could not be told from a gateway
or from another node (issue 15 point 2 binds a node's id to its credential). Rather than
certificates issued per daemon by an operator: node ids are made by each node on its first
start, and Kubernetes and compose start any number of replicas from one Secret; an operator
step per daemon would be a step per scale-out. The price, said plainly: whoever holds DIR can
mint any identity, so DIR is as secret as the cluster's data, handed to daemons as a volume or
a Secret, never on a command line. The CA key is read once at start and not kept.

Leaves live ``LEAF_LIFETIME`` (one year) and are issued afresh on every start: a leaf never
leaves its process's memory, so a shorter life would guard against little (anyone who can read
that memory can read DIR too), while a daemon up longer than its leaf would silently stop
talking to the cluster. ``not_valid_before`` is backdated ``CLOCK_SKEW`` for hosts whose clocks
disagree a little.

``ClusterLinks`` is the one place a daemon gets its gRPC transport from: secure ones built by
``cluster_links`` from a cluster folder, or ``PLAINTEXT_LINKS`` (``--insecure-cluster``, logged
as a warning). A daemon given neither refuses to start (``ClusterCredentialsError``).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from diststorage.core.filemodes import PRIVATE_DIR_MODE, make_private_dir, open_private_file

log = logging.getLogger(__name__)

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
# The DNS name in every leaf, checked by every client in place of the host it dials.
CLUSTER_NAME = "diststorage-cluster"
GATEWAY_ROLE = "gateway"
NODE_ROLE = "node"
CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(minutes=5)
MISSING_HINT = (
    "give --cluster-dir DIR (or DISTSTORAGE_CLUSTER_DIR), a folder made by "
    "`diststorage cluster init DIR`, or --insecure-cluster to run the cluster's gRPC links "
    "without authentication or encryption"
)


class ClusterCredentialsError(Exception):
    """The daemon has no usable cluster credential: no folder given, or an unreadable one.
    A start-up configuration error, raised before anything listens."""


@dataclass(frozen=True, slots=True)
class Authority:
    """The cluster CA: its certificate and key, as read from a cluster folder."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_authority(common_name: str = "diststorage cluster CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def init_cluster_dir(path: Path) -> bool:
    """Writes a new CA into ``path`` (0700, files 0600); True if it did. A folder that holds
    a CA already is left as it is (False): a second init must never split a running cluster
    into two that cannot talk to each other."""
    if (path / CA_CERT_FILE).exists() and (path / CA_KEY_FILE).exists():
        return False
    make_private_dir(path)
    os.chmod(path, PRIVATE_DIR_MODE)
    authority = new_authority()
    key_pem = authority.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a folder with a certificate but no key is incomplete, and init runs again.
    _write_private(path / CA_KEY_FILE, key_pem)
    _write_private(path / CA_CERT_FILE, authority.certificate_pem)
    return True


def _write_private(path: Path, data: bytes) -> None:
    fd = open_private_file(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def load_authority(path: Path) -> Authority:
    """The CA in cluster folder ``path``; raises ClusterCredentialsError saying what is wrong."""
    try:
        certificate = x509.load_pem_x509_certificate((path / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key((path / CA_KEY_FILE).read_bytes(), None)
    except OSError as exc:
        raise ClusterCredentialsError(f"cluster folder {path}: {exc}; {MISSING_HINT}") from exc
    except ValueError as exc:
        raise ClusterCredentialsError(f"cluster folder {path}: not a PEM CA: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ClusterCredentialsError(f"cluster folder {path}: {CA_KEY_FILE} is not an EC key")
    if key.public_key() != certificate.public_key():
        raise ClusterCredentialsError(
            f"cluster folder {path}: {CA_KEY_FILE} is not the key of {CA_CERT_FILE}"
        )
    return Authority(certificate, key)


@dataclass(frozen=True, slots=True)
class Credential:
    """One daemon's leaf (certificate and key, PEM) and the CA it trusts, PEM."""

    ca_pem: bytes
    certificate_pem: bytes
    key_pem: bytes


def issue(authority: Authority, role: str, identity: str) -> Credential:
    """A fresh leaf for ``role`` (GATEWAY_ROLE, NODE_ROLE) ``identity``, for both ends of a
    link (server and client authentication)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{role}:{identity}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLUSTER_NAME)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return Credential(
        ca_pem=authority.certificate_pem,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass(frozen=True, slots=True)
class ClusterLinks:
    """How a daemon listens for and dials the cluster's gRPC links: mutual TLS under the
    cluster CA with ``credential``, or plaintext when it is None (``PLAINTEXT_LINKS``)."""

    credential: Credential | None

    @property
    def secure(self) -> bool:
        return self.credential is not None

    def add_port(self, server: grpc.aio.Server, address: str) -> int:
        """Binds ``server`` to ``address``; returns the bound port. A secure server accepts
        only clients that present a leaf of the cluster CA."""
        credential = self.credential
        if credential is None:
            return server.add_insecure_port(address)
        server_credentials = grpc.ssl_server_credentials(
            [(credential.key_pem, credential.certificate_pem)],
            root_certificates=credential.ca_pem,
            require_client_auth=True,
        )
        return server.add_secure_port(address, server_credentials)

    def channel(
        self, address: str, options: Sequence[tuple[str, int | str]] = ()
    ) -> grpc.aio.Channel:
        """A channel to ``address``; a secure one checks that the server holds a leaf of the
        cluster CA (by ``CLUSTER_NAME``, whatever the address) and presents this daemon's."""
        credential = self.credential
        if credential is None:
            return grpc.aio.insecure_channel(address, options=list(options))
        channel_credentials = grpc.ssl_channel_credentials(
            root_certificates=credential.ca_pem,
            private_key=credential.key_pem,
            certificate_chain=credential.certificate_pem,
        )
        return grpc.aio.secure_channel(
            address,
            channel_credentials,
            options=[*options, ("grpc.ssl_target_name_override", CLUSTER_NAME)],
        )


PLAINTEXT_LINKS = ClusterLinks(None)


def cluster_links(
    cluster_dir: Path | None, insecure: bool, role: str, identity: str
) -> ClusterLinks:
    """The links of daemon ``role`` ``identity`` from its settings: a leaf issued under the CA
    in ``cluster_dir``; plaintext (with a warning) only when ``insecure`` and no folder is
    given. Raises ClusterCredentialsError when neither is given, or the folder is unusable."""
    if cluster_dir is None:
        if not insecure:
            raise ClusterCredentialsError(f"no cluster credential: {MISSING_HINT}")
        log.warning(
            "--insecure-cluster: the cluster's gRPC links are plaintext and unauthenticated; "
            "anyone who reaches them can read, write and delete chunks and pose as a node"
        )
        return PLAINTEXT_LINKS
    return ClusterLinks(issue(load_authority(cluster_dir), role, identity))


def peer_identity(auth_context: Mapping[str, Iterable[bytes]]) -> tuple[str, str] | None:
    """(role, identity) from the CN of a peer's leaf (``grpc.aio.ServicerContext``'s
    ``auth_context()``); None on a plaintext link or a CN not in the ``role:id`` form."""
    names = list(auth_context.get("x509_common_name", ()))
    if len(names) != 1:
        return None
    role, sep, identity = names[0].decode(errors="replace").partition(":")
    if not sep or role not in (GATEWAY_ROLE, NODE_ROLE):
        return None
    return role, identity
