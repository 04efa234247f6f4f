"""Catalog reads and SQL rendering shared by the legacy imports (predictions/legacy_services.py and
legacy_history_services.py): which tables exist, their columns with types, NOT NULL and lengths, and their CHECK
constraints, so our constraints become skip rules without code."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from psycopg import sql


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # format_type(), e.g. "character varying(255)"
    base_type: str  # information_schema data_type, e.g. "character varying"
    max_length: int | None
    not_null: bool

    @property
    def cast_type(self) -> str:
        """The type to convert legacy values to: a varchar without its length, as a cast would cut longer text."""
        return self.base_type if self.max_length else self.sql_type


def exists(cursor, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f'public."{table}"'])
    return cursor.fetchone()[0]


def columns(cursor, table: str) -> list[Column]:
    """The table's columns a row can be given values for, in table order (PostgreSQL computes generated ones)."""
    cursor.execute(
        """
        SELECT c.column_name, format_type(a.atttypid, a.atttypmod), c.data_type, c.character_maximum_length,
               c.is_nullable = 'NO'
          FROM information_schema.columns c
          JOIN pg_attribute a ON a.attrelid = to_regclass(%s) AND a.attname = c.column_name
         WHERE c.table_schema = 'public' AND c.table_name = %s AND a.attgenerated = ''
         ORDER BY c.ordinal_position
        """,
        [f'public."{table}"', table],
    )
    return [Column(*row) for row in cursor.fetchall()]


def check_constraints(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT conname, pg_get_expr(conbin, conrelid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'c' ORDER BY conname",
        [f'public."{table}"'],
    )
    return cursor.fetchall()


def render(statement: sql.Composable) -> str:
    """Composed SQL as text for Django's cursor; it carries its values as literals, so it runs without params."""
    return statement.as_string(connection.connection)
