"""The key-encryption-key (KEK) service interface: a local keystore by default, HashiCorp Vault transit in production.

A KMS holds one named KEK per classification, each with numbered versions. Wrapped blobs are ASCII text of the form
`<kms>:v<version>:<opaque>` (Vault transit's own format), so the version that wrapped a blob is visible without the
KMS, and a keystore can store blobs as text in any SQL database.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from broker.crypto.errors import KmsError


@runtime_checkable
class Kms(Protocol):
    name: str  # "local", "vault-transit"

    def wrap(self, kek_name: str, plaintext: bytes) -> bytes:
        """Encrypt under the newest version of the KEK (created at version 1 if absent)."""
        ...

    def unwrap(self, kek_name: str, blob: bytes) -> bytes:
        """Decrypt a blob wrapped under any version still held. Raises KmsError."""
        ...

    def rotate(self, kek_name: str) -> int:
        """Add a new KEK version for new wraps; old versions stay for unwrap. Returns the new version."""
        ...

    def rewrap(self, kek_name: str, blob: bytes) -> bytes:
        """The same plaintext wrapped under the newest version, without it leaving the KMS where the KMS allows."""
        ...

    def latest_version(self, kek_name: str) -> int:
        """Newest version of the KEK; 0 if it does not exist yet."""
        ...

    def describe(self) -> dict[str, Any]:
        """What `keys status` shows: the KMS kind and, where it can tell, each KEK's versions."""
        ...


def blob_version(blob: bytes) -> int:
    """The KEK version a wrapped blob names (`<kms>:v<N>:...`)."""
    parts = blob.split(b":", 2)
    if len(parts) != 3 or not parts[1].startswith(b"v") or not parts[1][1:].isdigit():
        raise KmsError("wrapped key is not in <kms>:v<version>:<data> form")
    return int(parts[1][1:])


def kek_name_for(classification: str) -> str:
    """One KEK per classification; dashes only, as Vault key names and file names like."""
    return "mash-" + classification.replace("_", "-")
