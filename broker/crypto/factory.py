"""Open the configured key provider: the keystore under <data_dir>/keys with the local KMS or Vault transit.

Settings (broker/config.py, so the configuration reference lists them): MASH_KMS=local|vault; for local,
MASH_MASTER_KEY or a master key file; for vault, VAULT_ADDR, VAULT_TOKEN, optional VAULT_NAMESPACE and
MASH_VAULT_TRANSIT_MOUNT. Data-key rotation: MASH_DATA_KEY_MAX_AGE_SECONDS, MASH_DATA_KEY_MAX_USES;
MASH_DATA_KEY_CACHE_SIZE bounds the unwrapped cache.
"""

from __future__ import annotations

from pathlib import Path

from broker.config import Settings
from broker.crypto.errors import KmsError
from broker.crypto.keystore import (
    KeyStore,
    UnwrapHook,
)
from broker.crypto.kms import Kms
from broker.crypto.kms_local import LocalKms, load_master_key
from broker.crypto.kms_vault import VaultTransitKms


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def open_kms(data_dir: Path, *, create: bool = False, master_key_file: Path | None = None) -> Kms:
    s = Settings()
    kind = s.kms.lower()
    if kind == "local":
        master = load_master_key(data_dir, master_key_file=master_key_file, create=create)
        return LocalKms(keys_dir(data_dir) / "local-kms.sqlite", master)
    if kind == "vault":
        if not s.vault_addr or s.vault_token is None:
            raise KmsError("MASH_KMS=vault needs VAULT_ADDR and VAULT_TOKEN")
        return VaultTransitKms(s.vault_addr, s.vault_token.get_secret_value(), mount=s.vault_transit_mount,
                               namespace=s.vault_namespace)
    raise KmsError(f"unknown MASH_KMS {kind!r} (local or vault)")


def open_key_provider(data_dir: Path, *, create: bool = False, master_key_file: Path | None = None,
                      on_unwrap: UnwrapHook | None = None, kms: Kms | None = None) -> KeyStore:
    """The keystore for this data directory. `create` allows generating a missing master key (development)."""
    s = Settings()
    return KeyStore(
        keys_dir(data_dir) / "datakeys.sqlite",
        kms or open_kms(data_dir, create=create, master_key_file=master_key_file),
        max_age_seconds=s.data_key_max_age_seconds,
        max_uses=s.data_key_max_uses,
        cache_size=s.data_key_cache_size,
        on_unwrap=on_unwrap,
    )
