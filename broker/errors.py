"""The root of every error the broker raises, and the small family HTTP and the CLI answer by.

Each of the broker's exception classes has one of these as a base, beside the builtin base it always had (so
`except ValueError` still catches a BadCursor): `except BrokerError` catches everything the broker raised on
purpose, and the family says what kind of answer it gets. The HTTP status of each family is set in one place,
broker/api/errors.py. Messages are value-free by the rule every subclass keeps: they name positions, fields, ids
and limits, never a value from a record.

This module imports nothing: every layer, the adapters included, may use it.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Every error the broker raises on purpose."""


class InputRejected(BrokerError):
    """What the caller sent cannot be used as it is (HTTP 400, 413 or 422): the caller must change it."""


class NotFound(BrokerError):
    """What the caller named does not exist, or not for this caller (HTTP 404)."""


class Conflict(BrokerError):
    """The request is well formed but clashes with the state it would change (HTTP 409)."""


class Refused(BrokerError):
    """A rule forbids it, whoever asks and however often (HTTP 403; an erased child's data is refused)."""


class Unavailable(BrokerError):
    """A part the request needs (Kafka, a key, a store, the identity provider) cannot be had now: retry later (503)."""


FAMILY = (InputRejected, NotFound, Conflict, Refused, Unavailable)
