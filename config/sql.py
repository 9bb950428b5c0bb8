"""SQL pieces shared across apps: the append-only trigger (migrations) and prepared hot-path statements."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection, migrations


def execute_prepared(sql: str, params: dict[str, Any]) -> tuple[tuple | None, int]:
    """Run one hot-path statement on Django's connection; returns (first row or None, rowcount).

    A server-side-binding psycopg cursor instead of Django's client-side one: psycopg prepares a statement
    it has run DB_PREPARE_THRESHOLD times on a connection, so PostgreSQL stops re-planning it (the web
    process's pooled connections live long). Same connection and transaction as the ORM; errors still come
    out as django.db exceptions. Cast parameters where PostgreSQL cannot infer their type.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return (cursor.fetchone() if cursor.description else None), cursor.rowcount


_FUNCTION = """
CREATE OR REPLACE FUNCTION pushwatch_refuse_change() RETURNS trigger AS $$
BEGIN
    -- Retention jobs may delete where a table allows it, by setting pushwatch.allow_delete locally.
    IF TG_OP = 'DELETE' AND TG_ARGV[0] = 'retention'
       AND current_setting('pushwatch.allow_delete', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def append_only(table: str, *, deletable_by_retention: bool = False) -> migrations.RunSQL:
    """Refuse UPDATE (and DELETE, unless a retention job opts in) on ``table`` with a trigger."""
    arg = "retention" if deletable_by_retention else "never"
    return migrations.RunSQL(
        sql=_FUNCTION
        + f"""
        CREATE TRIGGER {table}_append_only
            BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION pushwatch_refuse_change('{arg}');
        """,
        reverse_sql=f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};",
    )
