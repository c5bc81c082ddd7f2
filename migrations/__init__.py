"""Alembic revisions of the service's database, shipped inside the installed package."""
