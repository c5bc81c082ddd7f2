"""How `backprop` reports what went wrong: one line on stderr and exit status 1.

Errors the user can act on (a command line that does not parse, a file that
cannot be opened, an API's error answer, a service that does not answer, a
database that refuses, a setting given a value it cannot take) become that
line; anything else is a bug in this program, and its traceback is left intact
for the report.
"""

from __future__ import annotations

from typing import IO, Any

import click
from sqlalchemy.exc import DBAPIError

from store.settings import SettingsError

from .client import ClientError, Unreachable


class Failure(click.ClickException):
    """An error the user can act on."""

    def show(self, file: IO[Any] | None = None) -> None:
        # One line whatever the message holds, so that logs and scripts can read it.
        click.echo(f"backprop: {' '.join(self.format_message().split())}", err=True)


class BadCommandLine(Failure):
    """A command line that does not parse: status 2, as click gives it."""

    exit_code = 2


def first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def bad_command_line(error: click.UsageError, ctx: click.Context) -> BadCommandLine:
    # Click would print the usage text as well; the pointer to it is enough.
    where = error.ctx.command_path if error.ctx else ctx.command_path
    return BadCommandLine(f"{error.format_message()} (see `{where} --help`)")


class Reporting(click.Group):
    """A command group whose commands end in a :class:`Failure` rather than a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The group's own options (``backprop --bogus``) are parsed before any invoke.
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise bad_command_line(error, ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # the help text of a group called without a command
        except click.UsageError as error:
            raise bad_command_line(error, ctx) from None
        except click.FileError as error:
            raise Failure(error.format_message()) from None
        except ClientError as error:
            raise Failure(str(error)) from None
        except Unreachable as error:
            raise Failure(
                f"{error}; is `backprop up` running there? (--url or BACKPROP_URL)"
            ) from None
        except SettingsError as error:
            raise Failure(str(error)) from None
        except DBAPIError as error:
            raise Failure(f"database error: {first_line(error.orig)}") from None
