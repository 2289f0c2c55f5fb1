"""Alembic migrations are the schema: after `upgrade head`, the models match it exactly."""

from service import migrate


def test_models_and_migrations_agree(empty_database_url):
    # The template was built with `upgrade head`; running it again is a no-op.
    migrate.upgrade(empty_database_url)

    migrate.check(empty_database_url)  # raises if autogenerate would find a difference
