"""A local stand-in for HashiCorp Vault's transit secrets engine HTTP API, for tests (no Vault server installs from
the package index). A real HTTP server on 127.0.0.1 with real AES-256-GCM keys, versioned like Vault's:

POST /v1/transit/encrypt/<name>      {"plaintext": b64}     -> {"data": {"ciphertext": "vault:vN:...", "key_version"}}
POST /v1/transit/decrypt/<name>      {"ciphertext": ...}    -> {"data": {"plaintext": b64}}
POST /v1/transit/rewrap/<name>       {"ciphertext": ...}    -> {"data": {"ciphertext": "vault:v<latest>:..."}}
POST /v1/transit/keys/<name>         create                 -> 204
POST /v1/transit/keys/<name>/rotate                         -> {"data": {"latest_version": N, "keys": {...}}}
GET  /v1/transit/keys/<name>                                -> {"data": {...}} or 404
Every request needs X-Vault-Token; errors are {"errors": [...]} as Vault sends them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class TransitState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.keys: dict[str, dict[int, bytes]] = {}
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def create(self, name: str) -> None:
        self.keys.setdefault(name, {1: os.urandom(32)})

    def encrypt(self, name: str, plaintext: bytes) -> tuple[str, int]:
        self.create(name)  # Vault creates the key on first encrypt when the policy allows
        version = max(self.keys[name])
        nonce = os.urandom(12)
        ct = AESGCM(self.keys[name][version]).encrypt(nonce, plaintext, None)
        return f"vault:v{version}:" + base64.b64encode(nonce + ct).decode(), version

    def decrypt(self, name: str, ciphertext: str) -> bytes:
        prefix, version, body = ciphertext.split(":", 2)
        key = self.keys.get(name, {}).get(int(version.removeprefix("v")))
        if prefix != "vault" or key is None:
            raise ValueError("invalid ciphertext: unknown key or version")
        raw = base64.b64decode(body, validate=True)
        return AESGCM(key).decrypt(raw[:12], raw[12:], None)

    def describe(self, name: str) -> dict[str, Any]:
        versions = self.keys[name]
        return {"name": name, "type": "aes256-gcm96", "latest_version": max(versions), "min_decryption_version": 1,
                "keys": {str(v): int(time.time()) for v in versions}}


def _handler(state: TransitState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            if self.headers.get("X-Vault-Token") != state.token:
                return self._reply(403, {"errors": ["permission denied"]})
            parts = self.path.strip("/").split("/")
            if parts[:2] != ["v1", "transit"] or len(parts) < 4:
                return self._reply(404, {"errors": []})
            op, name, rest = parts[2], parts[3], parts[4:]
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._reply(400, {"errors": ["failed to parse JSON input"]})
            with state.lock:
                state.calls[f"{method} {op}{'/' + '/'.join(rest) if rest else ''}"] += 1
                try:
                    return self._dispatch(method, op, name, rest, body)
                except (ValueError, KeyError, binascii.Error, InvalidTag):
                    return self._reply(400, {"errors": ["invalid request"]})

        def _dispatch(self, method: str, op: str, name: str, rest: list[str], body: dict[str, Any]) -> None:
            if method == "POST" and op == "encrypt" and not rest:
                ciphertext, version = state.encrypt(name, base64.b64decode(body["plaintext"], validate=True))
                return self._reply(200, {"data": {"ciphertext": ciphertext, "key_version": version}})
            if method == "POST" and op == "decrypt" and not rest:
                plain = state.decrypt(name, body["ciphertext"])
                return self._reply(200, {"data": {"plaintext": base64.b64encode(plain).decode()}})
            if method == "POST" and op == "rewrap" and not rest:
                ciphertext, version = state.encrypt(name, state.decrypt(name, body["ciphertext"]))
                return self._reply(200, {"data": {"ciphertext": ciphertext, "key_version": version}})
            if op == "keys" and not rest:
                if method == "POST":
                    state.create(name)
                    return self._reply(204)
                if name not in state.keys:
                    return self._reply(404, {"errors": []})
                return self._reply(200, {"data": state.describe(name)})
            if method == "POST" and op == "keys" and rest == ["rotate"]:
                if name not in state.keys:
                    return self._reply(400, {"errors": ["key not found"]})
                state.keys[name][max(state.keys[name]) + 1] = os.urandom(32)
                return self._reply(200, {"data": state.describe(name)})
            return self._reply(405, {"errors": ["unsupported path"]})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


class VaultTransitStandIn:
    """Start with `with VaultTransitStandIn(token) as vault:`; `vault.addr` is its http://127.0.0.1:<port>."""

    def __init__(self, token: str) -> None:
        self.state = TransitState(token)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.addr = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="vault-standin",
                                        daemon=True)

    def __enter__(self) -> VaultTransitStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
