"""The subscriber endpoints' answers as types: what OpenAPI publishes and what a hub application may rely on.

docs/subscribers.md explains each field; docs/delivery-format.md the bytes inside `sealed`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CURSOR = ("An opaque, signed cursor bound to this subscriber and the Kafka epoch: pass it back as `after` or "
          "acknowledge it; never build or edit one.")


class Delivery(BaseModel):
    """One sealed delivery, as HTTP serves it."""

    model_config = ConfigDict(extra="forbid")

    offset: int = Field(ge=0, description="Offset on the subscriber's delivery topic partition.")
    partition: int = Field(ge=0, description="Partition of the delivery topic (one child's events share one).")
    event_id: str | None = Field(description="The canonical event's id (UUID): drop a delivery whose id you have "
                                 "already processed.")
    decision_id: str | None = Field(description="The sharing decision's id (UUID), as the audit log names it.")
    protocol_version: str | None = Field(description="Version of the information sharing protocol that decided.")
    sealed: str = Field(description="The sealed delivery, base64 (standard alphabet, padded): base64-decode it, then "
                        "open the bytes with SubscriberClient.open (docs/delivery-format.md).")
    cursor: str = Field(description="Position just after this delivery. " + CURSOR)


class DeliveryPage(BaseModel):
    """A pull's answer: deliveries in topic order per partition, and where the next pull starts."""

    model_config = ConfigDict(extra="forbid")

    deliveries: list[Delivery] = Field(description="At most `limit`; empty when nothing new is there.")
    next_cursor: str = Field(description="Position after everything read (the last delivery's cursor, or further "
                             "when erased or duplicate deliveries were skipped). " + CURSOR)


class Acknowledged(BaseModel):
    """An acknowledgement's answer: the cursor where every later read without `after` resumes."""

    model_config = ConfigDict(extra="forbid")

    acknowledged: str = Field(description=CURSOR)


class Problem(BaseModel):
    """Every error answer: a value-free message naming what is wrong (broker/api/errors.py)."""

    detail: str


def problems(described: dict[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for error statuses, each answer typed as a Problem."""
    return {code: {"model": Problem, "description": text} for code, text in described.items()}
