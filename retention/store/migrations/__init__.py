"""Alembic migrations of the retention database (README: "Database" says how to add one)."""
