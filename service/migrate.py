"""Alembic, driven from code: `exportctl db upgrade`, the tests and `make run` all use this."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

SCRIPT_LOCATION = "service:migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    if isinstance(engine_or_url, str):
        command.upgrade(alembic_config(engine_or_url), revision)
        return
    config = alembic_config(engine_or_url.url.render_as_string(hide_password=False))
    with engine_or_url.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models hold anything the migrations do not (alembic check)."""
    command.check(alembic_config(url))


def revision(url: str, message: str) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)
