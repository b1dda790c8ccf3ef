"""Stores at the edge: SQLite by default."""
