"""One root exception and a small family (broker/errors.py); every HTTP status an error gets is set in one place
(broker/api/errors.py). Driven through a real FastAPI app with the handlers installed, no service behind it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import adapters
import broker
from broker.api import errors as api_errors
from broker.errors import FAMILY, BrokerError, Conflict, InputRejected, NotFound, Refused, Unavailable

ROOT = Path(__file__).resolve().parents[2]


def broker_exception_classes() -> list[type[BaseException]]:
    found = []
    for package in (broker, adapters):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".bench" in info.name:  # the load generator's own tooling
                continue
            module = importlib.import_module(info.name)
            found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                      if issubclass(c, BaseException) and c.__module__ == info.name and not c.__name__.startswith("_")]
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__name__}")


def test_every_broker_exception_has_the_root() -> None:
    classes = broker_exception_classes()
    assert len(classes) >= 30
    assert [f"{c.__module__}.{c.__name__}" for c in classes if not issubclass(c, BrokerError)] == []


@pytest.mark.parametrize(("name", "builtin", "family"), [
    ("broker.service.delivery.BadCursor", ValueError, InputRejected),
    ("broker.service.reprocess.DeadLetterNotFound", LookupError, NotFound),
    ("broker.service.reprocess.DeadLetterErased", PermissionError, Conflict),
    ("broker.audit.keys.SigningKeyMissing", FileNotFoundError, Unavailable),
    ("broker.audit.record.AuditRecordError", ValueError, InputRejected),
    ("broker.service.intake.KafkaUnavailable", RuntimeError, Unavailable),
    ("broker.stores.decisions.AlreadyDecided", Exception, Conflict),
    ("broker.crypto.errors.ErasedData", Exception, Refused),
    ("adapters.kit.interface.AdapterInputError", Exception, InputRejected),
])
def test_rebased_classes_keep_their_old_base(name: str, builtin: type, family: type) -> None:
    module, _, cls_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    assert issubclass(cls, builtin) and issubclass(cls, family)


def test_keys_unavailable_is_one_class() -> None:
    from broker.crypto import KeyUnavailable
    from broker.service.intake import KeysUnavailable

    assert KeysUnavailable is KeyUnavailable


@pytest.fixture(scope="module")
def client() -> TestClient:
    from broker.service.decisions import DecisionRefused
    from broker.service.delivery import BadCursor, StaleCursor
    from broker.service.reprocess import DeadLetterErased, DeadLetterNotFound

    raised: dict[str, BaseException] = {
        "input": BadCursor("not a cursor this API issued"), "stale": StaleCursor("positions no longer held"),
        "missing": DeadLetterNotFound("dl_999001"), "erased": DeadLetterErased("dl_999002"),
        "refused": Refused("not for this credential"), "down": Unavailable("Kafka did not acknowledge"),
        "decision422": DecisionRefused(422, "withhold_paths: unknown path"),
        "decision503": DecisionRefused(503, "recorded, not delivered"), "plain": BrokerError("Testchild Example"),
    }
    app = FastAPI()
    api_errors.install(app)

    @app.get("/{what}")
    async def fail(what: str) -> None:
        raise raised[what]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("what", "code", "detail", "retry"), [
    ("input", 400, "not a cursor this API issued", None),
    ("stale", 410, "positions no longer held", None),
    ("missing", 404, "no reprocessable dead letter dl_999001", None),
    ("erased", 409, None, None),
    ("refused", 403, "not for this credential", None),
    ("down", 503, "Kafka did not acknowledge", "5"),
    ("decision422", 422, "withhold_paths: unknown path", None),
    ("decision503", 503, "recorded, not delivered", "30"),
])
def test_each_family_answers_with_its_status(client: TestClient, what: str, code: int, detail: str | None,
                                             retry: str | None) -> None:
    r = client.get(f"/{what}")
    assert r.status_code == code
    assert list(r.json()) == ["detail"]
    if detail is not None:
        assert r.json()["detail"] == detail
    assert r.headers.get("Retry-After") == retry


def test_a_broker_error_outside_the_family_is_a_500_that_says_nothing(client: TestClient) -> None:
    r = client.get("/plain")
    assert r.status_code == 500 and "Testchild" not in r.text


def test_the_family_is_what_the_handlers_cover() -> None:
    assert set(api_errors.FAMILY_STATUS) == set(FAMILY)


def test_no_router_maps_a_family_exception_itself() -> None:
    """The status comes from broker/api/errors.py only: no router catches a service exception to choose one."""
    names = "|".join(["BadCursor", "StaleCursor", "DeadLetterNotFound", "DeadLetterErased", "DecisionRefused",
                      "KafkaUnavailable", "KeysUnavailable", "IntakeBusy"])
    offenders = []
    for path in [*(ROOT / "broker" / "api").glob("*.py"), *(ROOT / "broker" / "web").glob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(rf"except .*\b({names})\b.*:", line) and "log." not in line:
                offenders.append(f"{path.name}:{n}")
    # subscribers.py reads the acknowledged cursor and ignores an unusable one (logged, never an HTTP answer): the
    # one `except BadCursor` allowed is the first after `def _acknowledged` (found, not a line number to keep)
    lines = (ROOT / "broker" / "api" / "subscribers.py").read_text().splitlines()
    start = next(n for n, line in enumerate(lines, 1) if line.startswith("def _acknowledged("))
    allowed = next(f"subscribers.py:{n}" for n, line in enumerate(lines, 1) if n > start and "except BadCursor" in line)
    assert offenders == [allowed] or offenders == [], offenders
