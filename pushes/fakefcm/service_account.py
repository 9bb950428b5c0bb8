"""Google service-account files for the fake FCM server (shared by the fake and `make run`'s launcher)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def token_uri_for(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/token"


def _new_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(private_key_pem: str) -> str:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def build_service_account(base_url: str, project_id: str, private_key_pem: str | None = None) -> dict[str, Any]:
    """A service-account JSON google-auth accepts unchanged, whose token_uri is the fake's /token."""
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_key_pem or _new_private_key_pem(),
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri_for(base_url),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "",
    }


def ensure_service_account(path: str | os.PathLike[str], base_url: str, project_id: str) -> dict[str, Any]:
    """Reuse the file at ``path`` when it already points at this fake (same token_uri and project),
    else write a fresh one. Reuse matters for `make run`: web/worker may have loaded the file before the
    fake starts, and a new key would make every token request fail."""
    target = Path(path)
    try:
        existing = json.loads(target.read_text())
        if (
            existing.get("type") == "service_account"
            and existing.get("token_uri") == token_uri_for(base_url)
            and existing.get("project_id") == project_id
            and "PRIVATE KEY" in existing.get("private_key", "")
        ):
            return existing
    except (OSError, ValueError):
        pass
    info = build_service_account(base_url, project_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)  # atomic: a reader never sees half a file
    return info
