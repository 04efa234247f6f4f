from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions.api.serializers import PredictRequestSerializer, PredictResponseSerializer
from predictions.services import NoActiveModels, predict_coin


class PredictView(APIView):
    """Predict one coin now with every active model (or the given training-service ids); results are stored."""

    def post(self, request):
        query = PredictRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        try:
            outcome = predict_coin(
                coin_id=query.validated_data["coin_id"],
                model_ids=query.validated_data.get("model_ids"),
                timestamp=query.validated_data.get("timestamp"),
            )
        except NoActiveModels as exc:
            return Response({"detail": str(exc)}, status=exc.status_code)
        return Response(PredictResponseSerializer(outcome).data)
