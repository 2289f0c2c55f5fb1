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
