from django.urls import path

from web.api.audit import views

urlpatterns = [
    path("audit", views.AuditListView.as_view(), name="audit-list"),
]
