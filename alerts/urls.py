"""Alert pages (the REST routes are in alerts/api/)."""

from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("alerts/", views.alert_list, name="list"),
]
