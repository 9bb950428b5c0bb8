"""/dashboard/ routes. Permissions for each name are in dashboard/permissions.py (VIEW_ROLES)."""

from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("login/", views.ThrottledLoginView.as_view(), name="login"),
    path("logout/", views.DashboardLogoutView.as_view(), name="logout"),
    path("vendor/plotly.min.js", views.plotly_js, name="plotly_js"),
    path("", views.overview, name="overview"),
    path("deliveries/", views.deliveries, name="deliveries"),
    path("deliveries/data.json", views.deliveries_data, name="deliveries_data"),
    path("deliveries/export.csv", views.deliveries_csv, name="deliveries_csv"),
    path("devices/", views.devices, name="devices"),
    path("devices/<uuid:device_id>/", views.device_detail, name="device_detail"),
    path("devices/<uuid:device_id>/deactivate", views.device_deactivate, name="device_deactivate"),
    path("devices/<uuid:device_id>/test-push", views.device_test_push, name="device_test_push"),
    path("trace/", views.trace, name="trace"),
    path("flags/", views.flags, name="flags"),
    path("flags/<str:key>/edit", views.flag_edit, name="flag_edit"),
    path("feed/", views.feed, name="feed"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/new", views.alert_create, name="alert_create"),
    path("alerts/<int:rule_id>/delete", views.alert_delete, name="alert_delete"),
    path("client-health/", views.client_health, name="client_health"),
]
