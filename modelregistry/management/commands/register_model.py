"""python manage.py register_model FILE --meta META.json [--activate] [--trust-pickle]"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from modelregistry.models import ModelSource
from modelregistry.services import RegistrationError, register_model


class Command(BaseCommand):
    help = (
        "Register a model file (XGBoost JSON/UBJ, skops; pickle/joblib only with --trust-pickle) with metadata "
        "in the training service's model shape."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--meta", type=Path, required=True, help="JSON file in the training service's shape")
        parser.add_argument("--activate", action="store_true", help="start predicting with it at once")
        parser.add_argument(
            "--trust-pickle",
            action="store_true",
            help="accept a pickle/joblib file: only for files you produced or trust (pickles can run code)",
        )

    def handle(self, *args, file, meta, activate: bool, trust_pickle: bool, **options):
        file, meta = Path(file), Path(meta)  # call_command passes strings
        try:
            artifact = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            metadata = json.loads(meta.read_text())
        except OSError as exc:
            raise CommandError(f"cannot read {meta}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{meta} is not valid JSON: {exc}") from None
        try:
            model = register_model(
                artifact=artifact,
                meta=metadata,
                source=ModelSource.COMMAND_LINE,
                filename=file.name,
                activate=activate,
                trust_pickle=trust_pickle,
            )
        except RegistrationError as exc:
            raise CommandError(f"{file.name}: {exc}") from None
        version = model.artifacts.get(is_current=True).version
        state = "active" if model.is_active else "inactive (activate it in the admin or with --activate)"
        self.stdout.write(f"Registered {model.model_name} as model #{model.pk}, version {version}, {state}.")
