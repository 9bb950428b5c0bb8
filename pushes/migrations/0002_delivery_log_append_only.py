from django.db import migrations

from config.sql import append_only


class Migration(migrations.Migration):
    dependencies = [("pushes", "0001_initial")]

    operations = [append_only("pushes_pushdeliverylog")]
