"""Tamper-evident audit: record builder, hash chain, signed checkpoints, verification, store, exports.

See broker/audit/README.md for what is recorded and how an outside auditor verifies an export.
"""

from broker.audit.chain import GENESIS, canonical
from broker.audit.record import KINDS, AuditRecordError, audit_record, validate_record
from broker.audit.verify import VerifyResult, verify

__all__ = ["GENESIS", "KINDS", "AuditRecordError", "VerifyResult", "audit_record", "canonical", "validate_record",
           "verify"]
