"""The small shared kit every adapter uses: the interface, event construction, identifier and date checks, safe XML."""

from adapters.kit.interface import (
    AdaptContext,
    Adapter,
    AdapterInputError,
    AdapterOutput,
    FieldProblem,
    Rejection,
)

__all__ = ["AdaptContext", "Adapter", "AdapterInputError", "AdapterOutput", "FieldProblem", "Rejection"]
