"""The adapters' settings, built once from Settings: the only place that turns MASH_* adapter settings (and the
files they name) into the AdapterSettings every adapt call receives in its context."""

from __future__ import annotations

from lxml import etree

from adapters.kit.interface import AdapterSettings
from adapters.social_care.cin_xsd import schemas_from_dir
from broker.config import Settings
from broker.errors import InputRejected


class AdapterSettingsError(InputRejected):
    """A setting names a file the adapters cannot use (the message names the setting and the reason)."""


def adapter_settings(settings: Settings) -> AdapterSettings:
    """Reads the CIN XSD folder (if set) now: call once at start, not per request."""
    try:
        schemas = schemas_from_dir(settings.cin_xsd_dir)
    except (OSError, etree.LxmlError) as exc:
        raise AdapterSettingsError(f"MASH_CIN_XSD_DIR: cannot load the CIN schemas ({type(exc).__name__})") from None
    return AdapterSettings(attendance_threshold=settings.attendance_threshold, cin_schemas=schemas)
