"""Running the importers as a user would: the `exportctl import` commands, through Flask's CLI runner."""

from pathlib import Path

from sqlalchemy import func, select

from service.models import AuditEntry, Event, ListCheck, Proposal, StatusChange

ROOT = Path(__file__).resolve().parents[2]
ECFR_JULY = ROOT / "tests/fixtures/ecfr/part740-2026-07-23.xml"
ECFR_DECEMBER = ROOT / "tests/fixtures/ecfr/part740-2026-12-01.xml"
FR = ROOT / "tests/fixtures/federal_register"
RULE_JSON, RULE_XML = FR / "rule-2026-23871.json", FR / "rule-2026-23871.xml"
FILED_JSON = FR / "public-inspection-2026-23871.json"


def import_ecfr(app, path: Path, issue_date: str, *extra: str):
    return app.test_cli_runner().invoke(
        args=["import", "ecfr", "--file", str(path), "--date", issue_date, "--actor", "importer-bot", *extra]
    )


def import_fr(app, path: Path, full_text: Path | None = None):
    args = ["import", "federal-register", "--file", str(path), "--actor", "importer-bot"]
    if full_text is not None:
        args += ["--full-text", str(full_text)]
    return app.test_cli_runner().invoke(args=args)


def counts(session) -> dict[str, int]:
    session.expire_all()
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model))
        for model in (Proposal, ListCheck, StatusChange, Event, AuditEntry)
    }
