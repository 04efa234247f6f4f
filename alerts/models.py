# Alerts are `model_predictions` rows seen through their tag and verdict (see predictions.models); this app
# holds the evaluation, ATH tracking and statistics logic and owns no table of its own.
