"""Database-side guards on the JSON columns: the stored value/default match the flag's type and
rules is always an array (the service validates ranges; the database refuses the wrong shape)."""

from django.db import migrations

_TYPE_MATCH = """
    CASE type
        WHEN 'bool' THEN jsonb_typeof({col}) = 'boolean'
        -- nested CASE: SQL does not promise AND short-circuits, and a boolean does not cast to numeric
        WHEN 'int' THEN CASE WHEN jsonb_typeof({col}) = 'number'
                             THEN ({col})::numeric = trunc(({col})::numeric) ELSE false END
        WHEN 'float' THEN jsonb_typeof({col}) = 'number'
        ELSE jsonb_typeof({col}) <> 'null'
    END
"""


class Migration(migrations.Migration):
    dependencies = [("flags", "0003_seed_flags")]

    operations = [
        migrations.RunSQL(
            f"""
            ALTER TABLE flags_flag
                ADD CONSTRAINT flag_value_matches_type CHECK ({_TYPE_MATCH.format(col="value")}),
                ADD CONSTRAINT flag_default_matches_type CHECK ({_TYPE_MATCH.format(col='"default"')}),
                ADD CONSTRAINT flag_rules_is_array CHECK (jsonb_typeof(rules) = 'array'),
                ADD CONSTRAINT flag_schema_is_object CHECK (jsonb_typeof(schema) = 'object');
            """,
            """
            ALTER TABLE flags_flag
                DROP CONSTRAINT flag_value_matches_type,
                DROP CONSTRAINT flag_default_matches_type,
                DROP CONSTRAINT flag_rules_is_array,
                DROP CONSTRAINT flag_schema_is_object;
            """,
        )
    ]
