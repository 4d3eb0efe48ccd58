"""TALLY_PROCESSES: what the settings accept, and the addresses each serving process gets."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tally.config import ConfigError, Settings, check_processes
from tally.supervisor import Supervisor, _shifted, die_with_parent

PG = "postgresql+psycopg://tally@127.0.0.1:5432/tally"


def settings(**env: str) -> Settings:
    return Settings.from_env({"TALLY_DATABASE_URL": PG, "TALLY_LISTEN_ADDRESS": "0.0.0.0:50051", **env})


def test_processes_are_bounded_and_default_to_one() -> None:
    assert settings().processes == 1 and not settings().reuse_port
    assert settings(TALLY_PROCESSES="8", TALLY_REUSE_PORT="true").processes == 8
    for bad in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="TALLY_PROCESSES"):
            settings(TALLY_PROCESSES=bad)


@pytest.mark.parametrize(("env", "said"), [
    ({"TALLY_DATABASE_URL": "sqlite:///tally.db"}, "needs PostgreSQL"),
    ({"TALLY_LISTEN_ADDRESS": "127.0.0.1:0"}, "other than 0"),
    ({"TALLY_LISTEN_ADDRESS": "unix:/tmp/tally.sock"}, "other than 0"),
])
def test_several_processes_need_postgresql_and_a_fixed_tcp_port(env: dict[str, str], said: str) -> None:
    check_processes(settings(**env))  # one process: anything goes
    with pytest.raises(ConfigError, match=said):
        check_processes(settings(TALLY_PROCESSES="2", **env))


def test_each_process_gets_its_metrics_port_and_only_the_first_the_console() -> None:
    supervisor = Supervisor(settings(TALLY_PROCESSES="3", TALLY_METRICS_ADDRESS="0.0.0.0:9464",
                                     TALLY_CONSOLE_ADDRESS="127.0.0.1:8080"))
    first, third = supervisor._env(0), supervisor._env(2)
    assert (first["TALLY_METRICS_ADDRESS"], third["TALLY_METRICS_ADDRESS"]) == ("0.0.0.0:9464", "0.0.0.0:9466")
    assert (first["TALLY_CONSOLE_ADDRESS"], third["TALLY_CONSOLE_ADDRESS"]) == ("127.0.0.1:8080", "")
    assert first["TALLY_PROCESSES"] == third["TALLY_PROCESSES"] == "1"
    assert first["TALLY_REUSE_PORT"] == "1" and "TALLY_BOOTSTRAP_ADMIN" not in first
    assert third["TALLY_BOOTSTRAP_ADMIN"] == "false"
    assert _shifted("", 2) == "" and _shifted("[::1]:0", 2) == "[::1]:0"


@pytest.mark.parametrize("supervisor_alive", [True, False], ids=["alive", "died-before-the-child-ran"])
def test_a_child_runs_only_while_its_supervisor_lives(tmp_path: Path, supervisor_alive: bool) -> None:
    """A supervisor killed between forking a child and the child setting its death signal sends none: the
    child must not go on to serve, orphaned, on the shared port. Here a parent pid other than the child's
    real parent stands for the one that died."""
    ran = tmp_path / "ran"
    parent = os.getpid() if supervisor_alive else os.getpid() + 1
    child = subprocess.Popen([sys.executable, "-c", f"open({str(ran)!r}, 'w').close()"],
                             preexec_fn=functools.partial(die_with_parent, parent))
    code = child.wait(30)
    assert (code, ran.exists()) == ((0, True) if supervisor_alive else (1, False))
