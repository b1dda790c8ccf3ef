"""Open the configured key provider: the keystore under <data_dir>/keys with the local KMS or Vault transit.

Environment: MASH_KMS=local|vault (default local); for local, MASH_MASTER_KEY or a master key file; for vault,
VAULT_ADDR, VAULT_TOKEN, optional VAULT_NAMESPACE and MASH_VAULT_TRANSIT_MOUNT (default "transit"). Data-key
rotation: MASH_DATA_KEY_MAX_AGE_SECONDS, MASH_DATA_KEY_MAX_USES; MASH_DATA_KEY_CACHE_SIZE bounds the unwrapped cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from broker.crypto.errors import KmsError
from broker.crypto.keystore import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_USES,
    KeyStore,
    UnwrapHook,
)
from broker.crypto.kms import Kms
from broker.crypto.kms_local import LocalKms, load_master_key
from broker.crypto.kms_vault import VaultTransitKms


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def open_kms(data_dir: Path, *, create: bool = False, master_key_file: Path | None = None) -> Kms:
    kind = os.environ.get("MASH_KMS", "local").lower()
    if kind == "local":
        master = load_master_key(data_dir, master_key_file=master_key_file, create=create)
        return LocalKms(keys_dir(data_dir) / "local-kms.sqlite", master)
    if kind == "vault":
        addr, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
        if not addr or not token:
            raise KmsError("MASH_KMS=vault needs VAULT_ADDR and VAULT_TOKEN")
        return VaultTransitKms(addr, token, mount=os.environ.get("MASH_VAULT_TRANSIT_MOUNT", "transit"),
                               namespace=os.environ.get("VAULT_NAMESPACE"))
    raise KmsError(f"unknown MASH_KMS {kind!r} (local or vault)")


def open_key_provider(data_dir: Path, *, create: bool = False, master_key_file: Path | None = None,
                      on_unwrap: UnwrapHook | None = None, kms: Kms | None = None) -> KeyStore:
    """The keystore for this data directory. `create` allows generating a missing master key (development)."""
    env = os.environ
    return KeyStore(
        keys_dir(data_dir) / "datakeys.sqlite",
        kms or open_kms(data_dir, create=create, master_key_file=master_key_file),
        max_age_seconds=float(env.get("MASH_DATA_KEY_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS)),
        max_uses=int(env.get("MASH_DATA_KEY_MAX_USES", DEFAULT_MAX_USES)),
        cache_size=int(env.get("MASH_DATA_KEY_CACHE_SIZE", DEFAULT_CACHE_SIZE)),
        on_unwrap=on_unwrap,
    )
