# The <uuid:> converter makes a malformed group id an unmatched URL: a JSON 404, never a 500.
from django.urls import path

from messaging import api

urlpatterns: list = [
    path("groups", api.GroupListView.as_view(), name="groups"),
    path("groups/<uuid:group_id>/messages", api.GroupMessagesView.as_view(), name="group-messages"),
    path("groups/<uuid:group_id>/receipts", api.GroupReceiptsView.as_view(), name="group-receipts"),
    path("groups/<uuid:group_id>/unread", api.GroupUnreadView.as_view(), name="group-unread"),
]
