"""A database that cannot be started or reached gives one readable line and a non-zero exit."""

from tests.conftest import run_manage


def assert_one_clear_line(result, expected: str):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pump-server: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_database_url():
    result = run_manage(
        "migrate", env_overrides={"DATABASE_URL": "postgresql://pump:secret@127.0.0.1:1/pumpdb"}
    )
    assert_one_clear_line(result, "cannot reach the database pumpdb on 127.0.0.1:1 (from DATABASE_URL)")
    assert "secret" not in result.stderr


def test_unix_socket_url_with_a_missing_socket_directory():
    result = run_manage(
        "migrate", env_overrides={"DATABASE_URL": "postgresql://pump@/pumpdb?host=/nonexistent/socket/dir"}
    )
    assert_one_clear_line(result, "cannot reach the database pumpdb on /nonexistent/socket/dir")


def test_malformed_database_url():
    result = run_manage("migrate", env_overrides={"DATABASE_URL": "postgresql://pump@localhost/db?no_such_option=1"})
    assert_one_clear_line(result, "DATABASE_URL is not a valid PostgreSQL URI")


def test_embedded_database_that_cannot_start(tmp_path):
    not_a_directory = tmp_path / "pgdata"
    not_a_directory.write_text("a file where the data directory should be")
    result = run_manage(
        "migrate", env_overrides={"DATABASE_URL": None, "EMBEDDED_PGDATA": str(not_a_directory)}
    )
    assert_one_clear_line(result, f"cannot start the embedded PostgreSQL in {not_a_directory}")
