"""Give a new installation something to serve: register the bundled demo model if no model exists yet."""

from django.core.management.base import BaseCommand

from modelregistry.demo import DEMO_MODEL_DIR, demo_model_meta
from modelregistry.models import ActiveModel, ModelSource
from modelregistry.services import register_model


class Command(BaseCommand):
    help = "Register and activate the bundled demo XGBoost model when the registry is empty."

    def handle(self, *args, **options):
        if ActiveModel.objects.exists():
            self.stdout.write("Models exist; no demo model added.")
            return
        model = register_model(
            artifact=(DEMO_MODEL_DIR / "model_xgb.json").read_bytes(),
            meta=demo_model_meta(),
            source=ModelSource.COMMAND_LINE,
            filename="model_xgb.json",
            activate=True,
        )
        self.stdout.write(f"Registered the demo model '{model.model_name}' (#{model.pk}) and activated it.")
