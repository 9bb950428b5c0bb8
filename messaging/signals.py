"""The one hook other apps plug into: fired once per new message, after its transaction commits.

Receivers (push fan-out, realtime emit) connect in their AppConfig.ready(); they are called with
``send_robust`` so a failing receiver is logged and never breaks the send path.
"""

from django.dispatch import Signal

# kwargs: message (messaging.models.Message, with group and sender loaded)
message_committed = Signal()
