"""SQL pieces shared by migrations: the append-only trigger."""

from django.db import migrations

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
