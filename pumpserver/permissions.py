from django.conf import settings
from rest_framework.permissions import BasePermission


class PublicIfSetting(BasePermission):
    """Open to anyone while the named setting is true (health, metrics); otherwise like IsAuthenticated."""

    setting_name = ""

    def has_permission(self, request, view):
        return getattr(settings, self.setting_name) or bool(request.user and request.user.is_authenticated)


class MetricsPublic(PublicIfSetting):
    setting_name = "METRICS_PUBLIC"


class HealthPublic(PublicIfSetting):
    setting_name = "HEALTH_PUBLIC"
