"""The configuration reference, rendered from the Settings model itself so the documentation cannot drift."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from broker.config import Settings

HEADER = """# Configuration reference

Generated from `broker/config.py` by `mash-broker config reference`; do not edit by hand
(`tests/deploy/test_configref.py` fails when this file and the code disagree). Regenerate with:

    mash-broker config reference > deploy/configuration.md

Every setting is read from the environment. Names are case-insensitive; where two names are listed, either works
and the first is the conventional one. Unset settings take the default shown.
"""


def env_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    """The environment variables that set this field, conventional one first."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{prefix}{name}".upper()]


def type_name(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        parts = [type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts) + (" (optional)" if type(None) in typing.get_args(annotation) else "")
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "true" if default else "false"
    return f"`{default}`"


def _cell(text: str) -> str:
    """One table cell: pipes and angle brackets escaped so Markdown shows them as written."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if text.startswith("`") else text.replace("<", "\\<").replace(">", "\\>")


def render(settings_cls: type[BaseSettings] = Settings) -> str:
    """Markdown: one table row per setting, in declaration order."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    rows = ["| setting | environment variable | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, field in settings_cls.model_fields.items():
        envs = ", ".join(f"`{e}`" for e in env_names(name, field, prefix))
        rows.append("| " + " | ".join(_cell(c) for c in (
            f"`{name}`", envs, type_name(field.annotation), default_text(field),
            field.description or "(no description: add one in broker/config.py)")) + " |")
    return HEADER + "\n" + "\n".join(rows) + "\n"
