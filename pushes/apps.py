from django.apps import AppConfig


class PushesConfig(AppConfig):
    name = "pushes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Fan-out hangs on messaging's on-commit hook (sent with send_robust: a failure never breaks a send).
        from messaging.signals import message_committed
        from pushes.services import on_message_committed

        message_committed.connect(on_message_committed, dispatch_uid="pushes.fan_out_message")
