"""The `exportctl` command (a Flask CLI group): database, seeds, server, worker, keys, spec."""

import os
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
from service.vocabulary import Role


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
        receipts_group,
        worker_command,
        schedule_group,
        export_command,
        import_group,
        watch_command,
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
    supervisor = WorkerSupervisor()  # the worker also runs the importers' schedule when configured
    supervisor.start()
    try:
        click.echo(f"starting the API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
        serve(host, port)
    finally:
        supervisor.stop()


def _start_worker() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"])


def exit_status(process: subprocess.Popen) -> str | None:
    """None while `process` runs; else how it ended. In `make run`, gunicorn's master shares this
    process and reaps every child that exits, this one too: its status is then gone, and
    Popen.poll() would call it 0."""
    if process.returncode is not None:
        return str(process.returncode)
    try:
        pid, status = os.waitpid(process.pid, os.WNOHANG)
    except ChildProcessError:
        process.returncode = 0  # as Popen records it: ended, status unknown
        return "status unknown: collected by another"
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return str(process.returncode)


class WorkerSupervisor:
    """Keeps `make run`'s webhook worker alive: one that dies (a crash, a kill -9) is started
    again within a second or two, so deliveries never wait for a person to notice."""

    CHECK_EVERY = 1.0

    def __init__(self, start=_start_worker):
        self._start = start
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self.process = self._start()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.CHECK_EVERY):
            process = self.process
            status = exit_status(process) if process is not None else None
            if status is not None and not self._stop.is_set():
                click.echo(f"webhook worker exited ({status}); starting another", err=True)
                self.restarts += 1
                self.process = self._start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


@click.command("worker", help="Deliver webhooks until stopped (SIGTERM or Ctrl-C finishes the batch).")
@click.option("--once", is_flag=True, help="Deliver one batch of due deliveries and exit.")
@with_appcontext
def worker_command(once: bool):
    from service.webhooks.worker import DeliveryWorker

    # Flask declares the current_app proxy as a Flask, so the proxy's own method is unknown to mypy.
    worker = DeliveryWorker(current_app._get_current_object())  # type: ignore[attr-defined]
    if once:
        click.echo(f"{worker.run_once()} deliveries attempted")
        worker.close()
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    config = current_app.config
    if config["WORKER_METRICS_PORT"]:
        worker.metrics.serve(config["HOST"], config["WORKER_METRICS_PORT"])
        click.echo(
            f"worker metrics on http://{config['HOST']}:{config['WORKER_METRICS_PORT']}/metrics", err=True
        )
    schedule = _start_import_schedule(config, stop)
    try:
        worker.run(stop)
    finally:
        stop.set()
        if schedule is not None:
            schedule.join(timeout=30)
        worker.close()


def _start_import_schedule(config, stop: threading.Event) -> threading.Thread | None:
    """With EXPORTCTL_IMPORT_WATCH, the worker also reads the regulator on its schedule."""
    if not config["IMPORT_WATCH"]:
        return None
    from service.importers.watch import Watcher, watch_on_schedule

    watcher = Watcher(config, db.database().sessionmaker)

    def run() -> None:
        try:
            watch_on_schedule(watcher, stop, config["IMPORT_WATCH_INTERVAL"].total_seconds())
        finally:
            watcher.close()

    thread = threading.Thread(target=run, name="import-schedule", daemon=True)
    thread.start()
    return thread


@click.group("schedule", help="Events that fall due on a date (the worker runs this in its loop).")
def schedule_group():
    pass


@schedule_group.command(
    "run", help="Emit once every entry.took_effect / entry.pending_overdue / list.stale event due now."
)
@with_appcontext
@needs_schema
def schedule_run_command():
    from service import clock
    from service.domain.freshness import emit_stale
    from service.domain.schedule import run_due

    now = clock.utcnow()
    result = run_due(db.database().sessionmaker, now, begin_write=db.begin_write)
    stale = emit_stale(db.database().sessionmaker, current_app.config, now, begin_write=db.begin_write)
    click.echo(
        f"{result.emitted} events emitted, {result.skipped} notices superseded, {result.failed} failed; "
        f"{stale} lists turned stale"
    )
    if result.failed:
        raise SystemExit(1)


@click.command("export", help="Write a snapshot of every entry (what GET /v1/snapshot serves).")
@click.option("--format", "format_", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="The date (default: today, UTC).")
@click.option("--known-at", help="As known at this moment (RFC 3339).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
@with_appcontext
@needs_schema
def export_command(format_: str, as_of, known_at: str | None, output: Path | None):
    from datetime import datetime

    from service import clock
    from service.domain import snapshot
    from service.schemas import ListedEntrySchema

    try:
        moment = datetime.fromisoformat(known_at.replace("Z", "+00:00")) if known_at else None
    except ValueError as exc:
        raise click.BadParameter(f"not an RFC 3339 moment: {known_at!r}", param_hint="--known-at") from exc
    if moment is not None and moment.tzinfo is None:
        raise click.BadParameter("give a UTC offset (2026-11-23T12:00:00Z)", param_hint="--known-at")
    day = as_of.date() if as_of else clock.today()
    with db.database().sessionmaker() as session:
        snapshot.begin_snapshot(session)
        versions = snapshot.versions(session)
        stream = snapshot.rows(session, day, moment)
        if format_ == "csv":
            chunks = snapshot.csv_chunks(stream)
        else:
            chunks = snapshot.jsonl_chunks(stream, ListedEntrySchema().dump)
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for chunk in chunks:
                target.write(chunk)
        finally:
            if output:
                target.close()
    click.echo(f"data version {versions.data_version}, event sequence {versions.event_sequence}", err=True)


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
@click.option("--role", type=click.Choice([role.label for role in Role]), required=True)
@with_appcontext
@needs_schema
def keys_create(name: str, role: str):
    with db.database().sessionmaker() as session:
        try:
            record, secret = keys.create_key(session, name, Role.named(role))
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


@click.group("receipts", help="Signed receipts: rotate the signing key, list keys, verify a receipt offline.")
def receipts_group():
    pass


@receipts_group.command(
    "rotate-key",
    help="Make a new signing key current; the old one is retired but stays published in the JWKS, "
    "so the receipts it signed stay verifiable.",
)
@with_appcontext
@needs_schema
def receipts_rotate_key():
    from sqlalchemy.exc import IntegrityError

    from service import clock
    from service.domain import receipts

    with db.database().sessionmaker() as session:
        try:
            db.begin_write(session)
            created, old = receipts.rotate_signing_key(session, clock.utcnow())
            session.commit()
        except IntegrityError as exc:  # the current key's unique index: one rotation wins
            raise click.ClickException("Another rotation ran at the same moment; nothing changed.") from exc
    click.echo(f"current signing key: {created.kid}")
    if old is not None:
        click.echo(f"retired (still published): {old.kid}")


@receipts_group.command("keys", help="List the signing keys (public part only), newest last.")
@with_appcontext
@needs_schema
def receipts_keys():
    from service.domain import receipts

    with db.database().sessionmaker() as session:
        rows = receipts.all_signing_keys(session)
    if not rows:
        click.echo("no signing key yet: one is made on the first receipt (or run `receipts rotate-key`)")
    for row in rows:
        state = f"retired {row.retired_at:%Y-%m-%d %H:%M:%S}" if row.retired_at else "current"
        click.echo(f"{row.kid}  {row.algorithm}  created {row.created_at:%Y-%m-%d %H:%M:%S}  {state}")


def _load_json(text: str, what: str):
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.ClickException(f"{what} is not JSON: {exc}") from exc


def _jwks_from(source: str | None):
    """A JWK Set from a URL, a file, or (no source) this service's own database."""
    if source is None:
        from service.domain import receipts

        with db.database().sessionmaker() as session:
            return receipts.jwks(receipts.all_signing_keys(session))
    if source.startswith(("http://", "https://")):
        import requests

        try:
            response = requests.get(source, timeout=(5, 30), headers={"Accept": "application/json"})
            response.raise_for_status()
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot fetch the JWKS from {source}: {exc}") from exc
        return _load_json(response.text, f"the JWKS at {source}")
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read the JWKS file {source}: {exc.strerror}") from exc
    return _load_json(text, f"the JWKS file {source}")


@receipts_group.command(
    "verify",
    help="Verify a receipt (the JSON the API returned; - for stdin) against the service's public keys: "
    "its JWS signature (EdDSA, Ed25519), and that its fields are exactly what was signed. "
    "Exit 0 if valid, 1 if not.",
)
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--jwks",
    "jwks_source",
    metavar="URL-OR-FILE",
    help="The JWK Set: https://<service>/.well-known/jwks.json or a saved copy. Default: this "
    "service's database (DATABASE_URL).",
)
@with_appcontext
def receipts_verify(file, jwks_source: str | None):
    from service.domain import receipts

    receipt = _load_json(file.read(), "the receipt")
    key_set = _jwks_from(jwks_source) if jwks_source else needs_schema(_jwks_from)(None)
    try:
        verified = receipts.verify(receipt, key_set)
    except receipts.ReceiptInvalid as exc:
        click.echo(f"invalid: {exc.detail}", err=True)
        raise SystemExit(1) from exc
    click.echo(f"valid: receipt {verified.receipt_id} signed by kid {verified.kid} on {verified.issued_at}")


@click.group("import", help="Import the regulator's publications as proposals for an editor to approve.")
def import_group():
    pass


def _cli_actor(name: str | None):
    import getpass

    from service.domain.audit import Actor

    return Actor(name=name or f"cli:{getpass.getuser()}")


def _run_import(work) -> None:
    """One transaction: the whole import or nothing; a document not understood changes nothing."""
    with db.database().sessionmaker() as session:
        try:
            db.begin_write(session)
            report = work(session)
            session.commit()
        except DomainError as exc:
            session.rollback()
            raise click.ClickException(exc.detail) from exc
    click.echo(report.summary())
    for proposal in report.proposals:
        if proposal.kind == "change":
            click.echo(
                f"  proposal {proposal.id}: {proposal.country_code} on {proposal.list_id} "
                f"-> {proposal.status} from {proposal.effective_on.isoformat()} "
                f"(was {proposal.observed_status})"
            )
        else:
            click.echo(f"  proposal {proposal.id}: review {proposal.document_key}: {proposal.note}")
    if report.checked_lists:
        click.echo(f"  checked, as published: {', '.join(report.checked_lists)}")


_DATE = click.DateTime(formats=["%Y-%m-%d"])


@import_group.command(
    "ecfr", help="Compare 15 CFR 740 Supp. No. 1 (eCFR XML) on its issue date with the service."
)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--date", "issue_date", type=_DATE, required=True, help="The eCFR issue date (YYYY-MM-DD).")
@click.option("--actor", help="Who is importing (the audit log's actor); default cli:<user>.")
@with_appcontext
def import_ecfr_command(path: Path, issue_date, actor: str | None):
    from service import clock
    from service.importers.runs import import_ecfr

    issue_date = issue_date.date()
    if issue_date > clock.today():
        raise click.BadParameter("an eCFR issue date cannot be in the future", param_hint="--date")
    data = path.read_bytes()
    _run_import(lambda session: import_ecfr(session, data, issue_date, actor=_cli_actor(actor)))


@import_group.command(
    "federal-register", help="Propose what a Federal Register document (API JSON) from BIS changes."
)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option(
    "--full-text",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The document's full-text XML (full_text_xml_url); without it a person is asked to read it.",
)
@click.option("--actor", help="Who is importing (the audit log's actor); default cli:<user>.")
@with_appcontext
def import_federal_register_command(path: Path, full_text: Path | None, actor: str | None):
    from service.importers.federal_register import parse_documents
    from service.importers.runs import import_fr_document

    try:
        documents = parse_documents(path.read_bytes())
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc
    if full_text is not None and len(documents) != 1:
        raise click.BadParameter("give one document with --full-text", param_hint="--full-text")
    text = full_text.read_bytes() if full_text else None
    for document in documents:
        _run_import(lambda session, d=document: import_fr_document(session, d, text, actor=_cli_actor(actor)))


@click.command("watch", help="Read the eCFR and the Federal Register on a schedule (EXPORTCTL_IMPORT_WATCH).")
@click.option("--once", is_flag=True, help="One pass now, then exit (status 1 if anything failed).")
@with_appcontext
def watch_command(once: bool):
    from service.importers.watch import Watcher

    config = current_app.config
    if not once and not config["IMPORT_WATCH"]:
        raise click.ClickException("watching is off: set EXPORTCTL_IMPORT_WATCH=true (or run --once)")
    watcher = Watcher(config, db.database().sessionmaker)
    stop = threading.Event()
    try:
        while True:
            result = watcher.run_once()
            for report in result.reports:
                click.echo(report.summary())
            for failure in result.failures:
                click.echo(f"failed: {failure}", err=True)
            if once:
                if result.failures:
                    raise click.exceptions.Exit(1)
                return
            if not stop.is_set():
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stop.set())
            if stop.wait(config["IMPORT_WATCH_INTERVAL"].total_seconds()):
                return
    finally:
        watcher.close()


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
