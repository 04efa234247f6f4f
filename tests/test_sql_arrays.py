"""The event path's array literals read back in PostgreSQL as exactly the values they were built from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from pumpserver import sql_arrays

pytestmark = pytest.mark.django_db


def read_back(literal: str, sql_type: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT unnest(%s::{sql_type}[])", [literal])
        return [row[0] for row in cursor.fetchall()]


def test_texts_survive_quotes_backslashes_separators_and_null():
    words = ['plain', 'with "quotes"', "back\\slash", "a,b", "{braces}", " spaced ", "NULL", "", "ünï", None]
    assert read_back(sql_arrays.texts(words), "text") == words


def test_timestamps_keep_microseconds_and_offsets():
    utc = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    elsewhere = datetime(2026, 6, 30, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert read_back(sql_arrays.timestamps([utc, elsewhere, None]), "timestamptz") == [utc, elsewhere, None]


def test_numbers_arrive_bit_for_bit():
    floats = [0.1 + 0.2, 1e-300, -2.5e300, 5e-324, 0.49999999999999994]
    assert read_back(sql_arrays.numbers(floats), "float8") == floats
    assert read_back(sql_arrays.numbers([True, False]), "bool") == [True, False]
    assert read_back(sql_arrays.values([3, None, 2**40]), "bigint") == [3, None, 2**40]
    assert read_back(sql_arrays.values(["negativ", None, "alert"]), "text") == ["negativ", None, "alert"]
