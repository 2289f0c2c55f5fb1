"""The `exportctl` command (a Flask CLI group): database, seeds, server, worker, keys, spec."""

import signal
import subprocess
import sys
import threading
from functools import wraps
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from service import db, migrate, seeding
from service.config import gunicorn_options, load_config
from service.domain import keys
from service.domain.errors import DomainError
from service.errors import database_unavailable


def _database_name() -> str:
    return make_url(current_app.config["DATABASE_URL"]).render_as_string(hide_password=True)


def needs_schema(command):
    """Database errors as advice: an unmigrated database or an unreachable one is a message
    saying what to do, never a traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig).lower()
            if "no such table" in text or "does not exist" in text and "relation" in text:
                raise click.ClickException(
                    f"The database {_database_name()} has no exportctl schema yet: run "
                    "`exportctl db upgrade` first, with the same DATABASE_URL as the server "
                    "(a key made in another database is not one the server knows)."
                ) from exc
            if database_unavailable(exc):
                raise click.ClickException(
                    f"Cannot reach the database {_database_name()}: {exc.orig}. "
                    "Check DATABASE_URL (it must be the server's)."
                ) from exc
            raise

    return wrapper


def init_app(app: Flask) -> None:
    # flask-smorest registers its own `openapi` group (JSON or unsorted YAML);
    # ours writes exactly the document the service serves and tests compare.
    app.cli.commands.pop("openapi", None)
    for command in (
        db_group,
        seed_command,
        serve_command,
        run_command,
        openapi_group,
        keys_group,
        worker_command,
    ):
        app.cli.add_command(command)


@click.group("db", help="Database schema (Alembic migrations).")
def db_group():
    pass


@db_group.command("upgrade", help="Apply every migration (creating the SQLite file if needed).")
@with_appcontext
def db_upgrade():
    url = current_app.config["DATABASE_URL"]
    _ensure_sqlite_directory(url)
    migrate.upgrade(db.database().engine)
    click.echo("database at head")


@db_group.command("check", help="Fail if the models hold anything the migrations do not.")
@with_appcontext
def db_check():
    migrate.check(current_app.config["DATABASE_URL"])
    click.echo("models and migrations agree")


def _ensure_sqlite_directory(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@click.command("seed", help="Load the seed data (idempotent: loading twice changes nothing).")
@click.option(
    "--seeds",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The seeds folder (default: EXPORTCTL_SEEDS, else the project's seeds/).",
)
@with_appcontext
@needs_schema
def seed_command(directory: Path | None):
    directory = directory or current_app.config["SEEDS_PATH"]
    with db.database().sessionmaker() as session:
        report = seeding.load_seeds(session, directory)
    click.echo(f"seeds loaded: {report}")


def serve(host: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication

    from service import create_app

    class Server(BaseApplication):
        def load_config(self):
            for key, value in gunicorn_options(load_config(), host=host, port=port).items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()

    Server().run()


@click.command("serve", help="Serve the API under gunicorn.")
@click.option("--host", default=lambda: load_config()["HOST"], show_default="HOST, else 127.0.0.1")
@click.option("--port", type=int, default=lambda: load_config()["PORT"], show_default="PORT, else 8000")
def serve_command(host: str, port: int):
    serve(host, port)


@click.command("run", help="Migrate, seed, start a webhook worker, and serve the API (what `make run` does).")
@click.option("--host", default=lambda: load_config()["HOST"], show_default="HOST, else 127.0.0.1")
@click.option("--port", type=int, default=lambda: load_config()["PORT"], show_default="PORT, else 8000")
@click.pass_context
def run_command(ctx: click.Context, host: str, port: int):
    ctx.invoke(db_upgrade)
    ctx.invoke(seed_command)
    worker = _start_worker()
    try:
        click.echo(f"starting the API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
        serve(host, port)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)


def _start_worker():
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"])


@click.command("worker", help="Deliver webhooks until stopped (SIGTERM or Ctrl-C finishes the batch).")
@click.option("--once", is_flag=True, help="Deliver one batch of due deliveries and exit.")
@with_appcontext
def worker_command(once: bool):
    from service.webhooks.worker import DeliveryWorker

    worker = DeliveryWorker(current_app._get_current_object())
    if once:
        click.echo(f"{worker.run_once()} deliveries attempted")
        worker.close()
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        worker.run(stop)
    finally:
        worker.close()


@click.group("openapi", help="The OpenAPI document.")
def openapi_group():
    pass


@openapi_group.command("write", help="Write the OpenAPI document the service serves (YAML).")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("openapi.yaml"))
@with_appcontext
def openapi_write(path: Path):
    from service.api.meta import spec_yaml

    path.write_text(spec_yaml(), encoding="utf-8")
    click.echo(f"wrote {path}")


@click.group("keys", help="API keys: create (shown once), list (no secrets), revoke.")
def keys_group():
    pass


@keys_group.command("create", help="Create a key and print it once; only its hash is stored.")
@click.option("--name", required=True, help="Who or what uses the key; recorded as the actor of its writes.")
@click.option("--role", type=click.Choice(["reader", "editor", "admin"]), required=True)
@with_appcontext
@needs_schema
def keys_create(name: str, role: str):
    with db.database().sessionmaker() as session:
        try:
            record, secret = keys.create_key(session, name, keys.Role.named(role))
            session.commit()
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
    click.echo(secret)
    click.echo(
        f"Key {record.id} {name!r} ({role}) created. Store it now: it cannot be shown again.", err=True
    )


@keys_group.command("list", help="List keys, without secrets.")
@with_appcontext
@needs_schema
def keys_list():
    with db.database().sessionmaker() as session:
        rows = keys.list_keys(session)
    click.echo(f"{'id':>4}  {'name':<24} {'role':<7} {'prefix':<12} {'created':<20} revoked")
    for row in rows:
        click.echo(
            f"{row.id:>4}  {row.name:<24} {row.role:<7} {row.prefix + '…':<12} "
            f"{row.created_at:%Y-%m-%d %H:%M:%S}  {row.revoked_at or '-'}"
        )


@keys_group.command("revoke", help="Revoke a key by name or id; it stops working at once.")
@click.argument("name_or_id")
@with_appcontext
@needs_schema
def keys_revoke(name_or_id: str):
    with db.database().sessionmaker() as session:
        try:
            record = keys.revoke_key(session, name_or_id)
            session.commit()
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
    click.echo(f"Key {record.id} {record.name!r} revoked.")


def main() -> None:
    from service import create_app, logs

    logs.configure()
    cli = FlaskGroup(
        name="exportctl",
        create_app=lambda: create_app(),
        add_default_commands=False,
        add_version_option=False,
        load_dotenv=False,
        set_debug_flag=False,
    )
    cli.main(prog_name="exportctl")


if __name__ == "__main__":
    main()
