"""The deployment files describe the same three processes."""

import shlex
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def test_compose_services_run_the_procfile_commands():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    processes = procfile()
    assert set(processes) == {"web", "listener", "worker"}
    for name, command in processes.items():
        assert compose["services"][name]["command"] == command, name


def without_bind_address(arguments: list[str]) -> list[str]:
    """systemd binds the web process to loopback (nginx in front); the Procfile binds every interface."""
    if "-b" in arguments:
        i = arguments.index("-b")
        return arguments[:i] + arguments[i + 2:]
    return arguments


def test_systemd_units_run_the_procfile_commands():
    for name, command in procfile().items():
        unit = (DEPLOY / "systemd" / f"pump-{name}.service").read_text()
        exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
        program, *arguments = shlex.split(exec_start.removeprefix("ExecStart="))
        assert Path(program).name == command[0], name
        assert without_bind_address(arguments) == without_bind_address(command[1:]), name


def test_local_runner_starts_every_process():
    script = (DEPLOY / "run-local.sh").read_text()
    assert "daphne" in script and "listen_events" in script and "qcluster" in script
