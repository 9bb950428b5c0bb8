"""The six seed-000 flags with their types, defaults, descriptions and validation schemas.

Existing rows are left alone (an admin's value is never reset by re-running migrations).
"""

from django.db import migrations

from flags.defaults import SEED_FLAGS


def create_seed_flags(apps, schema_editor):
    Flag = apps.get_model("flags", "Flag")
    for seed in SEED_FLAGS:
        Flag.objects.get_or_create(
            key=seed["key"],
            defaults={
                "type": seed["type"],
                "value": seed["default"],
                "default": seed["default"],
                "description": seed["description"],
                "schema": seed["schema"],
                "rules": [],
            },
        )


def remove_unchanged_seed_flags(apps, schema_editor):
    Flag = apps.get_model("flags", "Flag")
    Flag.objects.filter(key__in=[s["key"] for s in SEED_FLAGS], changes__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("flags", "0002_flag_change_append_only")]

    operations = [migrations.RunPython(create_seed_flags, remove_unchanged_seed_flags)]
