from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messaging.signals import message_committed
        from realtime.services import on_message_committed

        message_committed.connect(on_message_committed, dispatch_uid="realtime.message_created")
