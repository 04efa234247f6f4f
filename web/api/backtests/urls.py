"""Backtests under /api/ (no trailing slashes, as the other endpoints)."""

from django.urls import path

from web.api.backtests import views

urlpatterns = [
    path("models/<int:active_model_id>/backtests", views.ModelBacktestsView.as_view(), name="model-backtests"),
    path("backtests/<int:run_id>", views.BacktestDetailView.as_view(), name="backtest-detail"),
    path("backtests/<int:run_id>/rows", views.BacktestRowsView.as_view(), name="backtest-rows"),
]
