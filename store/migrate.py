"""Running the Alembic migrations from code (``backprop db upgrade``, tests).

The revisions are found through the installed ``migrations`` package, so this
works from a wheel as well as from a checkout; no ``alembic.ini`` is read (the
one at the repository's top is for developers running ``alembic`` by hand).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

SCRIPTS = Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
