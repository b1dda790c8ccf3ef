"""The HTTP API (FastAPI; OpenAPI docs at /docs)."""
