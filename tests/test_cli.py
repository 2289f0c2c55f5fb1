"""The `exportctl` command, through Flask's CLI runner."""

import pytest

from service import close_app
from tests.conftest import make_app


@pytest.fixture
def unmigrated_app(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    yield app
    close_app(app)


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--name", "alice", "--role", "editor"],
        ["keys", "list"],
        ["keys", "revoke", "alice"],
    ],
)
def test_key_commands_on_an_unmigrated_database_say_what_to_do(unmigrated_app, args):
    result = unmigrated_app.test_cli_runner().invoke(args=args)

    assert result.exit_code != 0
    assert "exportctl db upgrade" in result.output
    assert "DATABASE_URL" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_db_upgrade_then_keys_create_works(unmigrated_app):
    runner = unmigrated_app.test_cli_runner()

    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    created = runner.invoke(args=["keys", "create", "--name", "alice", "--role", "editor"])

    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("exk_")


def test_openapi_write_writes_what_the_service_serves(app, client, tmp_path):
    target = tmp_path / "openapi.yaml"

    result = app.test_cli_runner().invoke(args=["openapi", "write", str(target)])

    assert result.exit_code == 0, result.output
    assert target.read_text() == client.get("/openapi.yaml").get_data(as_text=True)


def test_make_runs_worker_is_started_again_when_it_dies(monkeypatch):
    """`make run` supervises its webhook worker: a killed worker is replaced (probe finding)."""
    import subprocess
    import sys
    import time

    from service import cli

    monkeypatch.setattr(cli.WorkerSupervisor, "CHECK_EVERY", 0.05)
    started = []

    def start():
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        started.append(process)
        return process

    supervisor = cli.WorkerSupervisor(start)
    supervisor.start()
    try:
        started[0].kill()  # as kill -9 would
        deadline = time.monotonic() + 10
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(started) == 2 and supervisor.restarts == 1
        assert started[1].poll() is None
    finally:
        supervisor.stop()
    assert all(p.poll() is not None for p in started)  # stopping stops the worker too


def test_a_worker_reaped_by_someone_else_is_not_said_to_have_exited_0():
    """In `make run` gunicorn's master shares the supervisor's process and reaps every child that
    exits, the webhook worker included: its status is gone, and Popen.poll() then calls it 0
    (outside probe: 'exited (0)' after kill -9). The supervisor says what it knows."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from service import cli

    def sleeper() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])

    reaped, killed, running = sleeper(), sleeper(), sleeper()
    try:
        os.kill(reaped.pid, signal.SIGKILL)
        os.waitpid(reaped.pid, 0)  # as gunicorn's SIGCHLD handler does: the status is now gone
        killed.kill()
        deadline = time.monotonic() + 10
        while (status := cli.exit_status(killed)) is None and time.monotonic() < deadline:
            time.sleep(0.02)

        assert cli.exit_status(running) is None
        assert cli.exit_status(reaped) == "status unknown: collected by another"
        assert status == "-9"  # its own status, read by the supervisor's wait
    finally:
        running.kill()
        running.wait()
