from django.urls import path

from web.api.predictions import views

urlpatterns = [
    path("predict", views.PredictView.as_view(), name="predict"),
    path("model-predictions", views.ModelPredictionsView.as_view(), name="model-predictions"),
    path(
        "model-predictions/<int:active_model_id>",
        views.ModelPredictionsDeleteView.as_view(),
        name="model-predictions-delete",
    ),
    path(
        "models/<int:active_model_id>/coins/<str:coin_id>/details",
        views.CoinDetailsView.as_view(),
        name="model-coin-details",
    ),
    path("admin/delete-old-logs/<int:active_model_id>", views.DeleteOldLogsView.as_view(), name="delete-old-logs"),
    path("predictions", views.PredictionsView.as_view(), name="predictions"),
    path(
        "models/<int:active_model_id>/predictions.csv", views.ModelPredictionsCsvView.as_view(),
        name="model-predictions-csv",
    ),
    path("predictions/latest/<str:coin_id>", views.LatestPredictionView.as_view(), name="predictions-latest"),
]
