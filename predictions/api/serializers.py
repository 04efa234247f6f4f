from rest_framework import serializers


class PredictRequestSerializer(serializers.Serializer):
    coin_id = serializers.CharField(max_length=64)
    model_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, allow_null=True, allow_empty=False,
        help_text="Training-service model ids; default: every active model.",
    )
    timestamp = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="Data time to predict as of (default: now); features use the coin's rows up to it.",
    )


class PredictionResultSerializer(serializers.Serializer):
    model_id = serializers.IntegerField(allow_null=True)
    active_model_id = serializers.IntegerField()
    model_name = serializers.CharField()
    prediction = serializers.ChoiceField(choices=[0, 1])
    probability = serializers.FloatField(min_value=0, max_value=1)


class PredictResponseSerializer(serializers.Serializer):
    coin_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    predictions = PredictionResultSerializer(many=True)
    total_models = serializers.IntegerField()
