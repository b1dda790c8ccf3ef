"""The canonical event schema: loading, field classification, validation."""
