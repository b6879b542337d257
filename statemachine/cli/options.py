"""Options, parameter types and helpers the commands share."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from ..clock import Clock, utc_now
from ..engine import Engine
from ..errors import SpecError, StoreError
from ..operations import Metrics
from ..spec import Spec

F = TypeVar("F", bound=Callable[..., Any])


def spec_option(command: F) -> F:
    """``--spec FILE``: use another machine spec than the bundled specs/debit.toml."""
    return click.option(
        "--spec",
        "spec_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Machine spec (TOML) to use instead of the bundled specs/debit.toml.",
    )(command)


def db_option(required: bool = True) -> Callable[[F], F]:
    """``--db PATH``: the SQLite file (or ``:memory:``) that holds the debits."""

    def decorate(command: F) -> F:
        return click.option(
            "--db",
            "db",
            required=required,
            metavar="PATH",
            help="SQLite file (or postgresql:// DSN) holding the debits."
            + ("" if required else " Default: in memory, nothing kept."),
        )(command)

    return decorate


class Duration(click.ParamType[timedelta]):
    """``90s``, ``15m``, ``12h`` or ``3d``."""

    name = "duration"
    units: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        if text[-1:] in self.units and text[:-1].replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text[:-1]) * self.units[text[-1]])
        self.fail(f"{value!r} is not a duration such as 90s, 15m, 12h or 3d", param, ctx)


class Zone(click.ParamType[tzinfo]):
    """An IANA zone name (``Asia/Shanghai``) or a fixed offset (``+08:00``)."""

    name = "zone"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tzinfo:
        if isinstance(value, tzinfo):
            return value
        text = str(value).strip()
        if text.upper() in ("UTC", "Z"):
            return UTC
        if text[:1] in "+-":
            try:
                return datetime.fromisoformat(f"2000-01-01T00:00:00{text}").tzinfo or UTC
            except ValueError:
                pass
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(f"{value!r} is not a zone such as UTC, Europe/London or +08:00", param, ctx)


def import_options(command: F) -> F:
    """``--mapping FILE`` and ``--timezone ZONE``: what some formats need to become events."""
    command = click.option(
        "--timezone",
        type=Zone(),
        default="UTC",
        show_default=True,
        help="Zone of times a file writes without an offset (NACHA dates, some bank files).",
    )(command)
    return click.option(
        "--mapping",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Mapping file for formats that need one (xes: activity -> event type).",
    )(command)


def open_engine(
    db: str | None,
    spec: Spec,
    clock: Clock = utc_now,
    *,
    create: bool = True,
    cache_size: int | None = None,
) -> Engine:
    """The engine on ``--db``; commands that only read pass ``create=False``, so a mistyped
    path is refused rather than answered from a new, empty database. ``cache_size``: debits
    a database store keeps in memory, if not its default."""
    target = db or ":memory:"
    options: dict[str, Any] = {} if target == ":memory:" else {"create": create}
    if cache_size is not None and target != ":memory:":
        options["cache_size"] = cache_size
    try:
        return Engine.open(target, spec=spec, clock=clock, **options)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def load_factory(path: str, option: str) -> Any:
    """What the factory at ``MODULE:FACTORY`` returns when called with no arguments: how
    ``--sender`` and ``--inquirer`` load the lender's own code. A path that does not load is
    a usage error of ``option``."""
    module_name, colon, attribute = path.partition(":")
    try:
        if not colon or not attribute:
            raise ValueError("no :FACTORY after the module")
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(
            f"cannot load {path!r} ({exc}); expected MODULE:FACTORY", param_hint=f"'{option}'"
        ) from None
    if not callable(factory):
        raise click.BadParameter(
            f"{path!r} is a {type(factory).__name__}, not a factory to call; expected MODULE:FACTORY",
            param_hint=f"'{option}'",
        )
    return factory()


def load_spec(path: Path | None) -> Spec:
    try:
        return Spec.load(path) if path else Spec.default()
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None


def pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "none"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def delivery(metrics: Metrics) -> str:
    """The delivery rate from receipts, overall then per channel with its counts (N8)."""
    parts = [f"{rate(metrics.delivery_rate)} overall"]
    for channel, counts in sorted(metrics.deliveries.items()):
        delivered = counts.get("delivered", 0)
        ended = sum(counts.values())
        parts.append(f"{channel} {rate(metrics.delivery_rates[channel])} ({delivered} of {ended})")
    return ", ".join(parts)
