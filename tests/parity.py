"""The parity fixture (tests/fixtures/parity_public), read as PostgreSQL would store it."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "parity_public"


@dataclass(frozen=True)
class ExpectedRow:
    model: str
    mint: str
    as_of_timestamp: str
    as_of_row: int
    served: bool
    probability: float | None
    prediction: int | None


def coin_metrics_rows() -> tuple[list[str], list[list[str | None]]]:
    """Header and rows of coin_metrics.csv; empty fields are NULL."""
    with open(FIXTURES / "coin_metrics.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [[value if value != "" else None for value in row] for row in reader]


def expected_rows() -> list[ExpectedRow]:
    with open(FIXTURES / "expected.csv", newline="") as f:
        return [
            ExpectedRow(
                model=row["model"],
                mint=row["mint"],
                as_of_timestamp=row["as_of_timestamp"],
                as_of_row=int(row["as_of_row"]),
                served=row["served"] == "1",
                probability=float(row["probability"]) if row["probability"] else None,
                prediction=int(row["prediction"]) if row["prediction"] else None,
            )
            for row in csv.DictReader(f)
        ]


def meta(name: str) -> dict:
    return json.loads((FIXTURES / f"model_{name}.meta.json").read_text())


def artifact(filename: str) -> bytes:
    return (FIXTURES / filename).read_bytes()
