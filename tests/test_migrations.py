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
