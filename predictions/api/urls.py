from django.urls import path

from predictions.api.views import PredictView

urlpatterns = [
    path("predict", PredictView.as_view(), name="predict"),
]
