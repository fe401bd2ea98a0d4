"""Alembic migrations of the retention database (how to add one: docs/development.md)."""
