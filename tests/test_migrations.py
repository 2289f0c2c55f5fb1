"""Alembic migrations are the schema: after `upgrade head`, the models match it exactly."""

from service import migrate


def test_models_and_migrations_agree(empty_database_url):
    # The template was built with `upgrade head`; running it again is a no-op.
    migrate.upgrade(empty_database_url)

    migrate.check(empty_database_url)  # raises if autogenerate would find a difference


def test_upgrading_a_database_with_data_in_it(templates):
    """Every migration applies over rows that reference each other (foreign keys on), and back."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from service.db import make_engine

    for backend, factory in templates.items():
        url = factory.create(seeded=False)  # migrated to head: step back first (tests downgrade too)
        try:
            migrate.downgrade(url, "0003")
            engine = make_engine(url)
            now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO events (id, type, occurred_at, data) "
                        "VALUES (1, 'webhook.ping', :now, '{}'), (2, 'list.created', :now, '{}')"
                    ),
                    {"now": now},
                )
                connection.execute(
                    text(
                        "INSERT INTO webhooks (id, url, countries, lists, event_types, enabled, secret, "
                        "created_at, updated_at, failing_since) VALUES (1, 'http://a', '[]', '[]', '[]', "
                        ":yes, 'whsec_x', :now, :now, :now)"
                    ),
                    {"now": now, "yes": True},
                )
                connection.execute(
                    text(
                        "INSERT INTO deliveries (webhook_id, event_id, state, attempts, next_attempt_at, created_at) "
                        "VALUES (1, 1, 'pending', 0, :now, :now)"
                    ),
                    {"now": now},
                )
            engine.dispose()

            migrate.upgrade(url)

            engine = make_engine(url)
            with engine.connect() as connection:
                public = dict(connection.execute(text("SELECT type, public FROM events")).all())
                counters = dict(connection.execute(text("SELECT name, value FROM counters")).all())
            engine.dispose()
            assert {k: bool(v) for k, v in public.items()} == {"webhook.ping": False, "list.created": True}, (
                backend
            )
            assert counters["data"] == counters["events"], backend
            migrate.check(url)
            migrate.downgrade(url, "0003")
        finally:
            factory.drop(url)


def test_the_new_seeds_load_over_a_database_holding_the_old_ones(templates):
    """0005 keeps every change (the API's too); the old undated table rows count as observations."""
    from datetime import UTC, date, datetime

    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from service import seeding
    from service.db import make_engine
    from service.domain import lookups
    from service.domain.countries import registry
    from service.models import StatusChange

    for backend, factory in templates.items():
        url = factory.create(seeded=False)
        try:
            migrate.downgrade(url, "0004")
            engine = make_engine(url)
            table_day = datetime(2026, 7, 23)  # naive UTC, as the old seeder stored it
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO control_lists (id, code, name, jurisdiction, authority, legal_basis, url, "
                        "effect, membership_complete, membership_complete_from, sources, recorded_at, updated_at) "
                        "VALUES ('us-ear-d1', 'D:1', 'National Security', 'US', 'BIS', 'basis', 'https://x', "
                        "'restrictive', :yes, :day, '[]', :at, :at)"
                    ),
                    {"yes": True, "day": date(2026, 7, 23), "at": table_day},
                )
                connection.execute(
                    text(
                        "INSERT INTO entries (list_id, country_code, version, created_at) VALUES "
                        "('us-ear-d1', 'NI', 2, :at)"
                    ),
                    {"at": table_day},
                )
                entry_id = connection.execute(text("SELECT id FROM entries")).scalar_one()
                source = '[{"title": "t", "publisher": "p", "url": "https://www.ecfr.gov/x"}]'
                for from_status, status, effective_on, recorded_at, actor in (
                    (None, "listed", None, table_day, "seed"),  # the old seeds' undated membership
                    ("listed", "removed", date(2026, 10, 1), datetime(2026, 11, 1), "alice"),  # via the API
                ):
                    connection.execute(
                        text(
                            "INSERT INTO status_changes (entry_id, from_status, status, effective_on, "
                            "recorded_at, sources, actor) VALUES (:entry, :from_status, :status, :effective_on, "
                            ":recorded_at, :src, :actor)"
                        ),
                        {
                            "entry": entry_id,
                            "from_status": from_status,
                            "status": status,
                            "effective_on": effective_on,
                            "recorded_at": recorded_at,
                            "src": source,
                            "actor": actor,
                        },
                    )
            engine.dispose()

            migrate.upgrade(url)

            engine = make_engine(url)
            with Session(engine) as session:
                first = seeding.load_seeds(session)
                second = seeding.load_seeds(session)
                changes = session.scalars(select(StatusChange).order_by(StatusChange.id)).all()
                d1 = lookups.get_list(session, "us-ear-d1")
                nicaragua = registry().get("NI")

                answers = {}
                for day in (date(2020, 1, 1), date(2024, 3, 15), date(2026, 10, 2)):
                    entries = lookups.country_status(session, nicaragua, day, None)["entries"]
                    answers[day] = {e["list"]["id"]: e["status"] for e in entries}["us-ear-d1"]
            engine.dispose()
            assert first.changes > 0 and first.observations > 0, backend
            assert (second.lists, second.changes, second.observations) == (0, 0, 0), backend
            assert [(c.actor, c.status) for c in changes[:2]] == [("seed", "listed"), ("alice", "removed")], (
                backend
            )
            assert d1.recorded_at == datetime(2026, 7, 23, tzinfo=UTC)
            assert answers == {
                date(2020, 1, 1): "unknown",
                date(2024, 3, 15): "listed",  # the new dated rule
                date(2026, 10, 2): "removed",  # the change recorded through the API stands
            }, backend
        finally:
            factory.drop(url)


def test_0008_schedules_the_notices_of_changes_still_to_come(templates):
    """Upgrading gives changes recorded ahead of their date their notice; past dates owe none."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from service.db import make_engine
    from service.models import ControlList, Entry, ScheduledNotice, StatusChange

    now = datetime.now(UTC)  # the migration reads the real clock, as it does in production
    today = now.date()
    source = [{"title": "t", "publisher": "p", "url": "https://www.federalregister.gov/d/1"}]
    for backend, factory in templates.items():
        url = factory.create(seeded=False)
        try:
            migrate.downgrade(url, "0007")
            engine = make_engine(url)
            with engine.begin() as connection:
                connection.execute(
                    insert(ControlList.__table__).values(
                        id="l", code="L", name="L", jurisdiction="US", authority="a", legal_basis="b",
                        url="https://www.ecfr.gov/x", effect="restrictive", membership_complete=False,
                        sources=[], recorded_at=now, updated_at=now,
                    )
                )  # fmt: skip
                connection.execute(insert(Entry.__table__).values(id=1, list_id="l", country_code="VN",
                                                                  version=3, created_at=now))  # fmt: skip
                changes = [
                    {"id": 1, "status": "listed", "effective_on": today - timedelta(days=400),
                     "expected_effective_on": None},
                    {"id": 2, "status": "pending_removal", "effective_on": today - timedelta(days=1),
                     "expected_effective_on": today + timedelta(days=20)},
                    {"id": 3, "status": "removed", "effective_on": today + timedelta(days=30),
                     "expected_effective_on": None},
                ]  # fmt: skip
                for change in changes:
                    connection.execute(
                        insert(StatusChange.__table__).values(
                            entry_id=1, recorded_at=now, sources=source, **change
                        )
                    )
            engine.dispose()

            migrate.upgrade(url)

            engine = make_engine(url)
            with engine.connect() as connection:
                notices = connection.execute(
                    select(ScheduledNotice.change_id, ScheduledNotice.kind, ScheduledNotice.due_on).order_by(
                        ScheduledNotice.change_id
                    )
                ).all()
            engine.dispose()
            assert [tuple(n) for n in notices] == [
                (2, "entry.pending_overdue", today + timedelta(days=21)),
                (3, "entry.took_effect", today + timedelta(days=30)),
            ], backend
            migrate.check(url)
            migrate.downgrade(url, "0007")
        finally:
            factory.drop(url)
