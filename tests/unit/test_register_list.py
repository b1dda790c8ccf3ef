"""The registers are listed once (broker/stores/registry.py) and everything that walks them reads that list: a
register class left out of it, a table left out of `stores migrate`, or a register of per-child facts that says
nothing about what a child's erasure does to it, fails here. Fictitious tokens only."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import get_type_hints

import pytest

import broker.stores
from broker.crypto.keystore import KeyStore
from broker.crypto.kms_local import LocalKms
from broker.service.erasure import erase_child
from broker.service.root import open_registers
from broker.service.runtime import Runtime, stores_status
from broker.stores.registry import (
    FORGETS,
    FORGOTTEN_ON_SHRED,
    NO_CHILD,
    REGISTERS,
    Forgets,
    forgetting,
    register_names,
)

CHILD = "lt1_999000000000000000000000000001"  # a fictitious linkage token
AT = "2026-12-01T09:00:00.000Z"
PER_CHILD_COLUMNS = {"subject", "token"}  # what a register keys a child's rows by


def register_classes(package: ModuleType) -> Iterator[type]:
    """Every class a module of `package` defines that is a register: it has a FILE, or it opens a register."""
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or getattr(cls, "_is_protocol", False):  # the protocols themselves
                continue
            if hasattr(cls, "FILE") or "open_register(" in inspect.getsource(cls):
                yield cls


def tables_and_columns(spec_cls: type, data_dir: Path) -> dict[str, set[str]]:
    register = spec_cls(data_dir / spec_cls.FILE)  # type: ignore[attr-defined]
    try:
        names = [t for (t,) in register.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {row[1] for row in register.db.query(f"PRAGMA table_info({t})")} for t in names}
    finally:
        register.close()


@pytest.fixture
def keystore(tmp_path: Path) -> Iterator[KeyStore]:
    kms = LocalKms(tmp_path / "kms.sqlite", secrets.token_bytes(32))
    store = KeyStore(tmp_path / "datakeys.sqlite", kms, revalidate_after=0)
    yield store
    store.close()
    kms.close()


def test_every_register_class_in_broker_stores_is_in_the_one_list() -> None:
    listed = {spec.cls for spec in REGISTERS}
    unlisted = sorted(cls.__qualname__ for cls in register_classes(broker.stores) if cls not in listed)
    assert unlisted == [], f"add these to broker/stores/registry.py REGISTERS: {unlisted}"
    assert len(listed) == len(REGISTERS) and len({spec.attr for spec in REGISTERS}) == len(REGISTERS)
    assert len({spec.file for spec in REGISTERS}) == len(REGISTERS)


def test_the_check_finds_a_new_register_class_no_one_listed(tmp_path: Path) -> None:
    """The test above can fail: a new module with a register class, left out of the list, is found."""
    package = tmp_path / "h20_stores_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "visits.py").write_text(
        "from broker.stores.db import open_register\n\n"
        "class VisitRegister:\n"
        "    def __init__(self, path, url=None):\n"
        "        self.db = open_register(path, ['CREATE TABLE IF NOT EXISTS visits (subject TEXT)'], url=url)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        found = [cls.__qualname__ for cls in register_classes(importlib.import_module("h20_stores_probe"))]
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("h20_stores_probe")]:
            del sys.modules[name]
    assert found == ["VisitRegister"]


def test_each_register_lists_every_table_it_creates_so_stores_migrate_copies_them_all(tmp_path: Path) -> None:
    """`stores migrate` copies spec.tables: a table missing there is left behind in SQLite (the cursor register's
    Kafka epoch was: after the move every cursor a subscriber held was refused as stale)."""
    for spec in REGISTERS:
        made = set(tables_and_columns(spec.cls, tmp_path))
        assert set(spec.tables) == made, f"{spec.cls.__qualname__}.TABLES {spec.tables} != created {sorted(made)}"


def test_a_register_of_per_child_rows_says_what_a_childs_erasure_does_to_it(tmp_path: Path) -> None:
    for spec in REGISTERS:
        columns = set().union(*tables_and_columns(spec.cls, tmp_path).values())
        holds_child = bool(columns & PER_CHILD_COLUMNS)
        assert spec.on_shred.strip(), spec.attr
        if holds_child:  # it must be forgotten, or say why it keeps its rows
            assert spec.on_shred != NO_CHILD, f"{spec.attr} holds rows per child: forget them or say why not"
        instance = spec.open(tmp_path / "forgets")
        try:  # a forget() no erasure calls would be silent; a FORGETS register without one cannot be forgotten
            assert isinstance(instance, Forgets) == (spec.on_shred == FORGETS), spec.attr
        finally:
            instance.close()
    assert {spec.attr for spec in FORGOTTEN_ON_SHRED} >= {"identities", "determinations"}


def test_a_shred_forgets_in_every_register_the_list_marks(tmp_path: Path, keystore: KeyStore) -> None:
    (tmp_path / "data").mkdir()
    opened = open_registers(tmp_path / "data", None)
    rt = SimpleNamespace(**opened)  # the registers by attribute, as the Runtime holds them
    try:
        assert stores_status(list(opened.values())) == "ok"
        assert rt.identities is not None and rt.determinations is not None and rt.erasures is not None
        rt.identities.record_birth_dates([(CHILD, "sealed-birth-date")], [], AT)
        rt.determinations.determine(CHILD, at_risk=True, reason="test determination", reference=None,
                                    recorded_by="cli:test", at=AT)
        assert rt.identities.sealed_birth_dates([CHILD]) and rt.determinations.listed([CHILD])

        erase_child(keystore, rt.erasures, None, [CHILD], "cli:test", AT, forget=forgetting(rt))

        assert rt.identities.sealed_birth_dates([CHILD]) == {} and rt.determinations.listed([CHILD]) == []
        assert rt.erasures.is_erased(CHILD)
    finally:
        for register in opened.values():
            register.close()


def test_a_runtime_names_every_register_and_a_shred_refuses_registers_not_open(tmp_path: Path) -> None:
    hints = get_type_hints(Runtime)
    for spec in REGISTERS:  # others read rt.cases, rt.identities...: each a field of its own class, never None
        assert hints.get(spec.attr) is spec.cls, spec.attr
    (tmp_path / "data").mkdir()
    opened = open_registers(tmp_path / "data", None)
    assert list(opened) == [spec.attr for spec in REGISTERS]
    opened["cases"].close()  # a register that no longer answers
    assert stores_status(list(opened.values())).startswith("unavailable")
    for register in opened.values():
        register.close()
    with pytest.raises(TypeError, match="cannot forget"):  # never a shred that silently forgets nothing
        forgetting(SimpleNamespace(**{spec.attr: None for spec in REGISTERS}))


def test_the_stores_help_names_every_register() -> None:
    from broker.cli.stores import app

    assert app.info.help is not None and register_names() in app.info.help
    assert all(spec.what in register_names() for spec in REGISTERS)


def test_stores_migrate_carries_the_kafka_epoch_the_cursors_are_bound_to(tmp_path: Path, pg_database: str) -> None:
    from broker.stores.cursors import CursorStore
    from broker.stores.migrate import migrate

    data = tmp_path / "data"
    cursors = CursorStore(data / CursorStore.FILE)
    cursors.adopt_epoch("epoch-999-test", AT)
    cursors.put("hub", "cursor-999", AT)
    cursors.close()
    assert migrate(data, pg_database)[CursorStore.FILE] == 2
    moved = CursorStore(data / CursorStore.FILE, pg_database)
    try:
        record = moved.epoch()
        assert record is not None and record.epoch == "epoch-999-test" and moved.get("hub") == "cursor-999"
    finally:
        moved.close()
