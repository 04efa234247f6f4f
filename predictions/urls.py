"""Pages of the predictions app: coin details and webhooks (the REST routes are in predictions/api/)."""

from django.urls import path

from predictions import views

app_name = "predictions"

urlpatterns = [
    path("models/<int:active_model_id>/coins/<str:coin_id>/", views.coin_detail, name="coin"),
    path("webhooks/", views.webhook_list, name="webhooks"),
    path("webhooks/<uuid:delivery_id>/redeliver/", views.webhook_redeliver, name="redeliver"),
]
