"""`GET /api/audit`: the audit trail for admin tokens and admin users, newest first."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from pumpserver.scopes import ADMIN
from web.api.audit import serializers as s
from web.api.common import BAD_REQUEST, query_data, validated


class AuditListView(APIView):
    required_scopes = {"GET": ADMIN}

    @extend_schema(
        tags=["audit"],
        operation_id="audit_list",
        parameters=[s.AuditQuerySerializer],
        responses={200: s.AuditListSerializer, 400: BAD_REQUEST},
    )
    def get(self, request):
        """Every write through a door (page, rest, mcp, admin, command) and every refused call, newest first:
        who (user, token hash), when, which object, the fields before and after. Filters: object_type, object_id,
        door, user, since; paged by limit/offset. Needs the `admin` scope."""
        query = validated(s.AuditQuerySerializer, query_data(request.query_params))
        limit, offset = query.pop("limit"), query.pop("offset")
        found = selectors.entries(**query)
        listed = list(found[offset:offset + limit])
        return Response(s.AuditListSerializer({"entries": listed, "total": found.count(), "limit": limit,
                                               "offset": offset}).data)
