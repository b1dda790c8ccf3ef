"""Field-level envelope encryption, crypto-shredding, key rotation, KMS plug-ins and sealed delivery.

- envelope: protect_event / reveal_event (pure; keys from a KeyProvider), protect_blob / reveal_blob
- keystore: KeyStore, the KeyProvider over SQLite and a KMS (kms_local.LocalKms, kms_vault.VaultTransitKms)
- seal / client: HPKE-sealed delivery to a subscriber's public key, and the subscriber's client
"""

from broker.crypto.envelope import (
    DEADLETTER_SCOPE,
    SHREDDED,
    UNAVAILABLE,
    Revealed,
    protect_blob,
    protect_event,
    reveal_blob,
    reveal_event,
)
from broker.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    ErasedData,
    KeyShredded,
    KeyUnavailable,
    KmsError,
    NotForThisSubscriber,
    SealError,
)
from broker.crypto.factory import open_key_provider, open_kms
from broker.crypto.keystore import KeyStore, ShredReport
from broker.crypto.provider import DataKey, KeyProvider

__all__ = [
    "DEADLETTER_SCOPE",
    "SHREDDED",
    "UNAVAILABLE",
    "CryptoError",
    "DataKey",
    "DecryptionFailed",
    "ErasedData",
    "KeyProvider",
    "KeyShredded",
    "KeyStore",
    "KeyUnavailable",
    "KmsError",
    "NotForThisSubscriber",
    "Revealed",
    "SealError",
    "ShredReport",
    "open_key_provider",
    "open_kms",
    "protect_blob",
    "protect_event",
    "reveal_blob",
    "reveal_event",
]
