"""The router's TLS material in the state directory: a self-signed certificate and its key.

On its first start the router makes a certificate for ``CROSSBAR_HOST`` (and
loopback names); datasock's own clients pin it rather than trusting any CA
(see :func:`datasock.client.tls_options`).
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from .secretstore import write_private


def cert_path(home: Path) -> Path:
    return home / "tls" / "server.crt"


def key_path(home: Path) -> Path:
    return home / "tls" / "server.key"


def _subject_names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in names:
        names.append(host)
    return names


def ensure_certificate(home: Path, host: str) -> Path:
    """Create a self-signed certificate for ``host`` unless a valid one exists."""
    from cryptography import x509

    crt = cert_path(home)
    if crt.exists() and key_path(home).exists():
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        now = datetime.datetime.now(datetime.timezone.utc)
        if cert.not_valid_after_utc > now + datetime.timedelta(days=7) and host in _cert_names(cert):
            return crt
    _write_certificate(home, _subject_names(host))
    return crt


def _cert_names(cert) -> set[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(n) for n in san.get_values_for_type(x509.IPAddress)}


def _write_certificate(home: Path, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "datasock router")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    write_private(key_path(home), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    crt = cert_path(home)
    crt.parent.mkdir(parents=True, exist_ok=True)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
