"""The CLI's shared plumbing: the Typer app, friendly errors, Temporal client, database."""

from __future__ import annotations

import asyncio
import functools
import getpass
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from retention.customer import describe_validation_error
from retention.errors import InvalidInput, RetentionError
from retention.runtime.settings import get_settings
from retention.runtime.temporal import connect

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retention.rulebook.loader import Rulebook

app = typer.Typer(
    help="Start, watch and steer customer retention journeys on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False)

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass
class _Options:
    address: str | None = None


_options = _Options()


@app.callback()
def _global_options(
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            envvar="RETENTION_TEMPORAL_ADDRESS",
            help="Temporal frontend host:port (default: TEMPORAL_ADDRESS or the temporal.toml "
            "profile, else 127.0.0.1:7233).",
        ),
    ] = None,
) -> None:
    _options.address = address


# ---- errors: one line on stderr, never a traceback -------------------------------------------


def friendly(command: Callable[P, T]) -> Callable[P, T]:
    """Turn every expected failure into one line on stderr: 2 for bad input, 1 for the rest."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except InvalidInput as exc:
            fail(str(exc), code=2)
        except RetentionError as exc:
            fail(str(exc))
        except TemporalError as exc:
            fail(f"Temporal: {exc}")
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except Exception as exc:  # noqa: BLE001 - the CLI's promise: no tracebacks
            fail(f"unexpected {type(exc).__name__}: {exc}")

    return wrapper


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def operator_name(by: str | None, doing: str) -> str:
    """Who is at the CLI, for the audit log: `--by`, else the user name; blank is refused."""
    name = (by or _user()).strip()
    if not name:
        raise InvalidInput(f"--by: say who {doing}")
    return name


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (e.g. a bare container)
        return "operator"


def with_client(work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        return await work(await connect(address=_options.address))

    return asyncio.run(main())


# ---- start -----------------------------------------------------------------------------------


OPTION_NAMES = {
    "time_scale": "--time-scale",
    "upstream_churn_probability": "--churn-probability",
    "customer_id": "CUSTOMER_ID",
    "channel": "--channel",
    "reason": "--reason",
    "address": "--address",
    "contact_id": "--contact",
}


def validated(model: type[M], **given: object) -> M:
    """`model` from the command's values (None: the default); a bad one named as typed."""
    try:
        return model(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = [
            f"{OPTION_NAMES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
            for e in exc.errors()
            if e["loc"]
        ]
        raise InvalidInput("; ".join(problems) or describe_validation_error(exc)) from exc


def rules_dir(path: Path | None) -> Path:
    return path or get_settings().rules_dir


def current_rulebook() -> Rulebook:
    from retention.rulebook.loader import load_rulebook

    return load_rulebook(rules_dir(None))


@contextmanager
def database() -> Iterator[Engine]:
    """The database engine; a database failure becomes one line naming the (safe) URL.

    sqlalchemy and the store load here, not at start-up: most commands never need them.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from retention.store.db import make_engine

    url = get_settings().database_url
    try:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise RetentionError(f"database {safe_url(url)}: {reason}") from exc


def safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def number(value: float | None, fmt: str) -> str:
    return fmt.format(value) if value is not None else "-"
