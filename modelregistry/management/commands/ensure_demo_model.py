"""Give a new installation something to serve: register the bundled demo model (modelregistry/demo.py) if no
model exists yet."""

from django.core.management.base import BaseCommand

from modelregistry.demo_services import register_bundled_demo_model


class Command(BaseCommand):
    help = "Register and activate the bundled demo XGBoost model when the registry is empty."

    def handle(self, *args, **options):
        model = register_bundled_demo_model()
        if model is None:
            self.stdout.write("Models exist; no demo model added.")
            return
        self.stdout.write(f"Registered the demo model '{model.model_name}' (#{model.pk}) and activated it.")
