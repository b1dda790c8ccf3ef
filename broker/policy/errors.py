"""The one exception a protocol raises: where in the file, and why. Never a value from the file."""

from __future__ import annotations

from broker.errors import BrokerError, InputRejected


class ProtocolError(InputRejected):
    """An unusable protocol: `origin` (file), `path` (YAML path such as `rules[2].fields[0].mask`), `reason`."""

    def __init__(self, origin: str, path: str, reason: str, line: int | None = None) -> None:
        self.origin, self.path, self.reason, self.line = origin, path, reason, line
        self.problems: list[ProtocolError] = [self]  # every problem found, when a check reports several
        where = f"{origin}:{line}" if line else origin
        super().__init__(f"{where}: {path or '(protocol)'}: {reason}")


class PolicyError(BrokerError):
    """A call the engine refuses: releasing against a withholding decision, a mask without its key."""
