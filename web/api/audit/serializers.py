from rest_framework import serializers

from audit.models import AuditEntry, Door
from web.api.common import PageQuerySerializer


class AuditQuerySerializer(PageQuerySerializer):
    object_type = serializers.CharField(required=False, max_length=100, help_text="e.g. modelregistry.activemodel")
    object_id = serializers.CharField(required=False, max_length=255)
    door = serializers.ChoiceField(required=False, choices=Door.choices)
    user = serializers.CharField(required=False, max_length=150, help_text="username")
    since = serializers.DateTimeField(required=False, help_text="ISO-8601; entries at or after this time")


class AuditEntrySerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="username", help_text="username (kept when the user is deleted)")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "user", "door", "action", "object_type", "object_id", "before", "after", "target",
                  "allowed", "missing_scope", "token_hash"]


class AuditListSerializer(serializers.Serializer):
    entries = AuditEntrySerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
