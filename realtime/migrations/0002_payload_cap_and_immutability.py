from django.db import migrations

from config.sql import append_only


class Migration(migrations.Migration):
    dependencies = [("realtime", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE realtime_realtimeevent ADD CONSTRAINT realtime_event_payload_2kb "
            "CHECK (octet_length(payload::text) <= 2048);",
            "ALTER TABLE realtime_realtimeevent DROP CONSTRAINT realtime_event_payload_2kb;",
        ),
        append_only("realtime_realtimeevent", deletable_by_retention=True),
    ]
