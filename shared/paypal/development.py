"""billhook's development certificate for PayPal webhooks: `billhook dev trigger paypal-*` signs
with its key, and web trusts it only when BILLHOOK_DEV_MODE=1 and the PayPal provider's
`verification` is "development" (see shared/paypal/webhooks.py). Kept under var/, made on first
use; a production deployment never has it, and never trusts it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# Not a PayPal host, so the offline and postback verifiers refuse it whatever the mode.
CERT_URL = "https://billhook.invalid/v1/notifications/certs/DEVELOPMENT"
_DIR = "paypal-development"


def certificate_pem(var_dir: Path) -> bytes:
    return _load_or_create(var_dir)[1]


def sign(var_dir: Path, message: bytes) -> str:
    """The base64 SHA256withRSA signature PayPal's headers carry."""
    key_pem, _ = _load_or_create(var_dir)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _load_or_create(var_dir: Path) -> tuple[bytes, bytes]:
    folder = var_dir / _DIR
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    if key_path.exists() and cert_path.exists():
        return key_path.read_bytes(), cert_path.read_bytes()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billhook development certificate (not PayPal)")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    folder.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(key_pem)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem)
    return key_pem, cert_pem
