from django.db import migrations

from config.sql import append_only


class Migration(migrations.Migration):
    dependencies = [("flags", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE flags_flagchange ADD CONSTRAINT flag_change_reason_required CHECK (btrim(reason) <> '');",
            "ALTER TABLE flags_flagchange DROP CONSTRAINT flag_change_reason_required;",
        ),
        append_only("flags_flagchange"),
    ]
