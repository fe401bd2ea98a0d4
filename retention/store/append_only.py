"""The audit log is append-only, enforced by the database itself: no row is ever deleted, and
an update may only replace the customer's identity with an erasure pseudonym (`forget`, which
GDPR obliges), never who did what, or when.

The triggers are created with the table (a new database) and by migration 0002 (an older one).
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, event

ERASED_PREFIX = "erased-"
REFUSAL = "audit_log is append-only"
_NOT_ERASED = f"substr(NEW.customer_id, 1, {len(ERASED_PREFIX)}) <> '{ERASED_PREFIX}'"

_SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS audit_log_no_rewrite BEFORE UPDATE ON audit_log
    WHEN NEW.customer_id IS NULL OR {_NOT_ERASED}
      OR NEW.at IS NOT OLD.at OR NEW.actor IS NOT OLD.actor OR NEW.action IS NOT OLD.action
    BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END""",
]
_POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'DELETE' OR NEW.customer_id IS NULL
         OR {_NOT_ERASED}
         OR NEW.at IS DISTINCT FROM OLD.at OR NEW.actor IS DISTINCT FROM OLD.actor
         OR NEW.action IS DISTINCT FROM OLD.action THEN
        RAISE EXCEPTION '{REFUSAL}';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
]


def make_append_only(connection: Connection) -> None:
    """Create the triggers on this connection's audit_log (idempotent)."""
    statements = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(connection.dialect.name, [])
    for statement in statements:
        connection.exec_driver_sql(statement)


def guard_on_create(table: Table) -> None:
    """Create the triggers whenever `create_all` creates the table."""
    event.listen(table, "after_create", lambda _t, connection, **_: make_append_only(connection))
