"""aiokafka connection options (TLS, SASL/SCRAM) from Settings.

Every aiokafka client the broker makes (service, workers, doctor, topic provisioning) takes these options, so a
secured cluster is reached the same way everywhere. Defaults: PLAINTEXT (the embedded broker).
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context


def kafka_client_options(settings: Any) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: security_protocol, SASL credentials, an SSL context."""
    protocol = (getattr(settings, "kafka_security_protocol", None) or "PLAINTEXT").upper()
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=_text(getattr(settings, "kafka_ssl_cafile", None)),
            certfile=_text(getattr(settings, "kafka_ssl_certfile", None)),
            keyfile=_text(getattr(settings, "kafka_ssl_keyfile", None)))
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = getattr(settings, "kafka_sasl_mechanism", None) or "SCRAM-SHA-512"
        options["sasl_plain_username"] = getattr(settings, "kafka_sasl_username", None)
        password: Any = getattr(settings, "kafka_sasl_password", None)
        # SecretStr or str: the value is handed to the client only, never logged.
        options["sasl_plain_password"] = password.get_secret_value() if hasattr(password, "get_secret_value") \
            else password
    return options


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
