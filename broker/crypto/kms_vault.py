"""HashiCorp Vault transit as the KMS: KEKs never leave Vault; it wraps, unwraps, rotates and re-wraps data keys.

Uses POST /v1/<mount>/encrypt/<name>, /decrypt/<name>, /rewrap/<name>, /keys/<name>/rotate, /keys/<name> (create)
and GET /keys/<name>,
authenticated with the X-Vault-Token header. Blobs are Vault's own `vault:v<version>:<base64>` text. The Vault
policy needs create/update on those paths (encrypt creates the key on first use when the policy allows it).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx

from broker.crypto.errors import KmsError
from broker.crypto.kms import blob_version


class VaultTransitKms:
    name = "vault-transit"

    def __init__(self, addr: str, token: str, *, mount: str = "transit", namespace: str | None = None,
                 timeout: float = 5.0, verify: bool | str = True, client: httpx.Client | None = None) -> None:
        headers = {"X-Vault-Token": token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._mount = mount.strip("/")
        self._http = client or httpx.Client(base_url=addr.rstrip("/"), headers=headers, timeout=timeout,
                                            verify=verify)
        if client is not None:
            self._http.headers.update(headers)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, op: str, kek_name: str, body: dict[str, Any] | None = None) -> Any:
        """One transit call; any failure is a KmsError naming the operation and key (never Vault's body)."""
        try:
            resp = self._http.request(method, f"/v1/{self._mount}/{path}", json=body)
        except httpx.HTTPError as exc:
            raise KmsError(f"vault transit {op} {kek_name}: {type(exc).__name__}") from None
        if resp.status_code == 204:
            return {}
        if resp.status_code == 404 and op == "read":
            return None
        if resp.status_code >= 300:
            raise KmsError(f"vault transit {op} {kek_name}: HTTP {resp.status_code}")
        try:
            return resp.json().get("data") or {}
        except ValueError:
            raise KmsError(f"vault transit {op} {kek_name}: response is not JSON") from None

    def wrap(self, kek_name: str, plaintext: bytes) -> bytes:
        data = self._call("POST", f"encrypt/{kek_name}", "encrypt", kek_name,
                          {"plaintext": base64.b64encode(plaintext).decode()})
        return self._blob(data, "encrypt", kek_name)

    def unwrap(self, kek_name: str, blob: bytes) -> bytes:
        blob_version(blob)
        data = self._call("POST", f"decrypt/{kek_name}", "decrypt", kek_name, {"ciphertext": blob.decode("ascii")})
        try:
            return base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise KmsError(f"vault transit decrypt {kek_name}: no plaintext in the response") from None

    def rotate(self, kek_name: str) -> int:
        """Vault refuses to rotate a key that does not exist: create it (version 1) instead, as the local KMS does."""
        if self.latest_version(kek_name) == 0:
            self._call("POST", f"keys/{kek_name}", "create", kek_name, {"type": "aes256-gcm96"})
            return self.latest_version(kek_name)
        data = self._call("POST", f"keys/{kek_name}/rotate", "rotate", kek_name)
        return int(data.get("latest_version") or self.latest_version(kek_name))

    def rewrap(self, kek_name: str, blob: bytes) -> bytes:
        data = self._call("POST", f"rewrap/{kek_name}", "rewrap", kek_name, {"ciphertext": blob.decode("ascii")})
        return self._blob(data, "rewrap", kek_name)

    def latest_version(self, kek_name: str) -> int:
        data = self._call("GET", f"keys/{kek_name}", "read", kek_name)
        return int(data.get("latest_version", 0)) if data else 0

    def describe(self) -> dict[str, Any]:
        return {"kms": self.name, "addr": str(self._http.base_url), "mount": self._mount}

    @staticmethod
    def _blob(data: Any, op: str, kek_name: str) -> bytes:
        text = data.get("ciphertext") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise KmsError(f"vault transit {op} {kek_name}: no ciphertext in the response")
        blob = text.encode("ascii")
        blob_version(blob)
        return blob
