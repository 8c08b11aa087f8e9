"""The state directory: per-user secrets and the router's TLS material.

Nothing secret lives in code. On first start the router creates random secrets
(mode 0600) and a self-signed certificate; datasock's own clients read both from
here and pin the certificate rather than trusting any CA.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets as _secrets
from pathlib import Path

from .errors import DatasockError

#: datasock's own WAMP-CRA users; each has the role of the same name.
USERS = ("hub", "datanode", "consumer")


class StateError(DatasockError):
    """The state directory is missing something or holds something unusable."""


def secrets_path(home: Path) -> Path:
    return home / "secrets.json"


def cert_path(home: Path) -> Path:
    return home / "tls" / "server.crt"


def key_path(home: Path) -> Path:
    return home / "tls" / "server.key"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_secrets(home: Path) -> dict[str, str]:
    """Load the users' secrets, creating any that are missing."""
    path = secrets_path(home)
    current = load_secrets(home) if path.exists() else {}
    missing = [user for user in USERS if user not in current]
    if missing:
        current.update({user: _secrets.token_urlsafe(32) for user in missing})
        write_private(path, json.dumps(current, indent=2).encode())
    return current


def load_secrets(home: Path) -> dict[str, str]:
    path = secrets_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(f"no secrets at {path}: start the router once (datasock router) "
                         "or point DATASOCK_HOME at the router's state directory") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read secrets from {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise StateError(f"{path} is not a JSON object of user -> secret")
    return data


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
