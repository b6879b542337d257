"""The ``statemachine`` command (also ``python -m statemachine``)."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson
from tqdm import tqdm

from .clock import Clock, ManualClock, utc_now
from .dispatch import Sender
from .engine import Engine
from .errors import SpecError, StoreError
from .importers import (
    FORMATS,
    ImportFailed,
    ImportOptions,
    ImportTally,
    Record,
    staged,
    write_jsonl,
)
from .importers import read as read_import
from .importers.xes import DEFAULT_MAPPING
from .operations import check_alerts, prometheus_text
from .records import Notice
from .replay import (
    BatchedReplay,
    Replay,
    ReplayStopped,
    ReplaySummary,
    html_report,
    replay_logs,
    replay_records,
)
from .scenarios import Scenario, bundled_scenarios
from .spec import Spec

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
            help="SQLite file holding the debits (created if missing)."
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


def _open(db: str | None, spec: Spec, clock: Clock = utc_now) -> Engine:
    try:
        return Engine.open(db or ":memory:", spec=spec, clock=clock)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _load_spec(path: Path | None) -> Spec:
    try:
        return Spec.load(path) if path else Spec.default()
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="statemachine")
def main() -> None:
    """Debit state-machine engine: apply payment events, derive customer notices from state.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl
    """


@main.command()
@click.argument("logs", nargs=-1, required=True)
@db_option(required=False)
@spec_option
@click.option("--strict", is_flag=True, help="Stop at the first bad line (exit code 2).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the summary as JSON to this file.")  # fmt: skip
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page with charts to this file.")  # fmt: skip
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Events per transaction. Notices go out exactly as with --batch 1.")  # fmt: skip
@click.option("--format", "format_", type=click.Choice(["events", *sorted(FORMATS)]),
              default="events", show_default=True,
              help="events: JSONL or CSV in the event format; else a payment format, imported "
                   "whole before anything is replayed (see `statemachine import`).")  # fmt: skip
@import_options
def replay(
    logs: tuple[str, ...],
    db: str | None,
    spec_path: Path | None,
    strict: bool,
    report_path: Path | None,
    html_path: Path | None,
    batch_size: int,
    format_: str,
    mapping: Path | None,
    timezone: tzinfo,
) -> None:
    """Replay event logs on event time and print a summary.

    LOGS are JSONL or CSV files in the event format (.gz too), or - for stdin. Notices are
    dispatched on the replay clock (the latest occurred_at seen) through a recording sender:
    no customer is contacted. Bad lines are stored as invalid, with file and line, and
    counted. Replaying again into the same --db changes nothing.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl --db march.sqlite
        statemachine replay march.csv.gz --strict --report march.json --html march.html
        statemachine replay --format nacha returns-*.ach --db march.sqlite
    """
    spec = _load_spec(spec_path)
    progress = _progress if sys.stderr.isatty() else None
    with ExitStack() as stack:
        records = None
        if format_ != "events":
            try:  # the whole import is read before the database is opened
                records = stack.enter_context(
                    staged(format_, logs, ImportOptions(mapping=mapping, timezone=timezone))
                )
            except ImportFailed as exc:
                raise click.ClickException(str(exc)) from None
        engine = _open(db, spec, clock=ManualClock())
        stack.callback(engine.close)
        feeder: Replay | BatchedReplay = (
            Replay(engine) if batch_size == 1 else BatchedReplay(engine, batch_size=batch_size)
        )
        summary = _replay(feeder, logs, records, strict, progress)
    click.echo(summary.render())
    if report_path is not None:
        report_path.write_bytes(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2))
    if html_path is not None:
        html_path.write_text(html_report(summary, spec), encoding="utf-8")


def _replay(
    feeder: Replay | BatchedReplay,
    logs: tuple[str, ...],
    records: Iterable[tuple[str, bytes, Any]] | None,
    strict: bool,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None,
) -> ReplaySummary:
    try:
        if records is not None:
            return replay_records(feeder, records, strict=strict, progress=progress)
        return replay_logs(feeder, logs, strict=strict, progress=progress)
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ReplayStopped as exc:
        click.echo(f"Error: {exc.origin}: {exc.reason}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        # The batch in flight rolled back; every batch before it is committed whole.
        click.echo("interrupted: replay again to resume (stored events come back as duplicates)",
                   err=True)  # fmt: skip
        sys.exit(130)


@main.command("import")
@click.argument("format_", metavar="FORMAT", type=click.Choice(sorted(FORMATS)))
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL file to write; default: standard output.")  # fmt: skip
@import_options
def import_(
    format_: str, files: tuple[Path, ...], output: Path | None, mapping: Path | None,
    timezone: tzinfo,
) -> None:  # fmt: skip
    """Read payment files as events in the event format (JSONL).

    \b
    FORMAT is one of:
      gocardless  GoCardless webhook bodies (JSON), payment events
      nacha       NACHA ACH files: debit entries and returns (addenda 99)
      iso20022    ISO 20022 pain.008, pain.002 and camt.054 (XML)
      xes         XES event logs (.xes, .xes.gz) with a mapping file

    Files of one format are read together, so that a return finds its debit and a status
    report its instruction. A truncated or foreign file stops the import with its name and
    line or element; nothing is written then. docs/importers/ has each mapping. A line on
    standard error says how many records were read and skipped, and why.

    Exit codes: 0 events written; 1 a file refused, or no events in the files (nothing is
    written); 2 a usage error.

    \b
    Example:
        statemachine import nacha outbound.ach returns.ach -o march.jsonl
        statemachine import xes bpic2012.xes.gz --mapping specs/mappings/bpic2012.toml -o bpi.jsonl
    """
    if format_ == "xes" and mapping is None:
        click.echo(f"no --mapping: using the bundled BPI Challenge 2012 mapping {DEFAULT_MAPPING}",
                   err=True)  # fmt: skip
    tally = ImportTally()
    try:
        records = read_import(
            format_, files, ImportOptions(mapping=mapping, timezone=timezone), tally
        )
        count = write_jsonl(_some(records), output if output else sys.stdout.buffer)
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from None
    except _NoEvents:
        hint = "; give a mapping that fits the log with --mapping FILE" if format_ == "xes" else ""
        raise click.ClickException(
            f"no events in {_named(files)}: {tally.describe()}{hint}"
        ) from None
    except OSError as exc:  # readers name their own files: this is the output's folder, ...
        target = output or "standard output"
        raise click.ClickException(f"{target}: cannot be written ({exc.strerror})") from None
    click.echo(f"{count} events written to {output or 'standard output'} ({tally.describe()})",
               err=True)  # fmt: skip


class _NoEvents(Exception):
    """An import read its files and found no event in them."""


def _some(records: Iterable[Record]) -> Iterator[Record]:
    """The records, or :class:`_NoEvents` at the end when there were none: it stops
    ``write_jsonl`` before it writes anything."""
    empty = True
    for record in records:
        empty = False
        yield record
    if empty:
        raise _NoEvents


def _named(files: tuple[Path, ...]) -> str:
    shown = ", ".join(map(str, files[:3]))
    return shown + (f" and {len(files) - 3} more files" if len(files) > 3 else "")


def _progress(records: Iterable[Any]) -> Iterable[Any]:
    return tqdm(records, unit=" lines", desc="replay", file=sys.stderr, mininterval=0.5)


@main.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@spec_option
def diff(first: str, second: str, spec_path: Path | None) -> None:
    """List the debits whose final state or notices differ between two databases.

    For example the same log replayed under two specs: what would the change do?

    \b
    Example:
        statemachine replay march.jsonl --db today.sqlite
        statemachine replay march.jsonl --db proposed.sqlite --spec proposed.toml
        statemachine diff today.sqlite proposed.sqlite
    """
    spec = _load_spec(spec_path)
    with _open(first, spec) as a, _open(second, spec) as b:
        ids = sorted(set(a.store.debit_ids()) | set(b.store.debit_ids()))
        differ = 0
        for debit_id in ids:
            left, right = _outcome(a, debit_id), _outcome(b, debit_id)
            if left != right:
                differ += 1
                click.echo(f"{debit_id}\n  A: {left}\n  B: {right}")
    click.echo(f"{differ} of {len(ids)} debits differ")


def _outcome(engine: Engine, debit_id: str) -> str:
    debit = engine.get(debit_id)
    if debit is None:
        return "absent"
    review = " needs review" if debit.needs_review else ""
    notices = ", ".join(
        sorted(f"{n.kind}@{n.attempt} {n.status}" for n in engine.notices(debit_id))
    )
    return f"{debit.state}@{debit.attempt}{review}; notices: {notices or 'none'}"


@main.command()
@click.argument("debit_id")
@db_option()
@spec_option
def show(debit_id: str, db: str, spec_path: Path | None) -> None:
    """Show one debit: its state, every stored event with its verdict, and its notices.

    \b
    Example:
        statemachine show loan-00042/2026-03 --db march.sqlite
    """
    with _open(db, _load_spec(spec_path)) as engine:
        debit = engine.get(debit_id)
        if debit is None:
            raise click.ClickException(f"no debit {debit_id!r} in {db}")
        review = f", needs review: {debit.review_reason}" if debit.needs_review else ""
        click.echo(
            f"{debit.debit_id}: {debit.state}, attempt {debit.attempt}, version {debit.version}{review}"
        )
        for stored in engine.history(debit_id):
            when = stored.occurred_at.isoformat() if stored.occurred_at else "-"
            click.echo(
                f"  {stored.seq:>6} {stored.verdict:9} {stored.type or '-':9} #{stored.attempt or '-'} "
                f"{stored.source or '-':10} {when}  {stored.event_id or '-'}: {stored.reason}"
            )
        for notice in engine.notices(debit_id):
            sent = (
                f" via {notice.channel} at {notice.sent_at.isoformat()}" if notice.sent_at else ""
            )
            click.echo(
                f"  notice {notice.kind}@{notice.attempt} ({notice.outcome}): {notice.status}{sent}"
            )


@main.command()
@db_option()
@spec_option
@click.option(
    "--stuck-after",
    type=Duration(),
    default="3d",
    show_default=True,
    help="A debit submitted this long with no news counts as stuck.",
)
@click.option("--prometheus", is_flag=True, help="Print Prometheus text exposition instead.")
def stats(db: str, spec_path: Path | None, stuck_after: timedelta, prometheus: bool) -> None:
    """Print operations metrics and the alerts they raise.

    \b
    Example:
        statemachine stats --db march.sqlite --stuck-after 2d
        statemachine stats --db march.sqlite --prometheus > metrics.prom
    """
    with _open(db, _load_spec(spec_path)) as engine:
        metrics = engine.metrics(stuck_after=stuck_after)
        if prometheus:
            click.echo(prometheus_text(metrics), nl=False)
            return
        click.echo(f"events by verdict   {_pairs(metrics.events_by_verdict)}")
        click.echo(f"debits by state     {_pairs(metrics.debits_by_state)}")
        click.echo(f"notices by status   {_pairs(metrics.notices_by_status)}")
        click.echo(f"success rate        {_rate(metrics.success_rate)}")
        click.echo(f"delivery rate       {_rate(metrics.delivery_rate)}")
        click.echo(f"conflicts           {metrics.conflicts}")
        click.echo(f"needs review        {metrics.needs_review}")
        click.echo(f"stuck in submitted  {metrics.stuck}")
        for debit_id, last in engine.stuck(stuck_after)[:10]:
            click.echo(f"  {debit_id} (last news {last.isoformat()})")
        for alert in check_alerts(metrics):
            click.echo(f"ALERT {alert}")


@main.command()
@db_option()
@spec_option
@click.option(
    "--sender",
    "sender_paths",
    multiple=True,
    metavar="MODULE:FACTORY",
    help="A callable returning a sender, tried in the order given. Default: print.",
)
@click.option(
    "--loop",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Keep dispatching, pausing this long between rounds, until interrupted.",
)
@click.option("--limit", type=int, default=None, help="At most this many notices a round.")
def dispatch(db: str, spec_path: Path | None, sender_paths: tuple[str, ...], loop: float | None,
             limit: int | None) -> None:  # fmt: skip
    """Send the notices that are due, once or in a loop.

    A notice is sent only if it still states the debit's outcome, else cancelled as
    superseded. Senders are tried in order until one accepts; delivery is at least once,
    with the notice id as the idempotency key.

    \b
    Example:
        statemachine dispatch --db march.sqlite --sender mylender.notify:sms --loop 30
    """
    senders = [_load_sender(path) for path in sender_paths] or [PrintSender()]
    with _open(db, _load_spec(spec_path)) as engine:
        while True:
            for notice in engine.dispatch_due(senders, limit=limit):
                where = f" via {notice.channel}" if notice.channel else ""
                click.echo(
                    f"{notice.status:9} {notice.notice_id}{where} {notice.status_reason or ''}".rstrip()
                )
            if loop is None:
                return
            try:
                time.sleep(loop)
            except KeyboardInterrupt:
                return


@main.command()
@db_option()
@spec_option
def verify(db: str, spec_path: Path | None) -> None:
    """Check P6 for every debit: the live state equals a rebuild from its stored events.

    \b
    Example:
        statemachine verify --db march.sqlite
    """
    with _open(db, _load_spec(spec_path)) as engine:
        problems = engine.verify()
        count = len(list(engine.store.debit_ids()))
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} of {count} debits differ from their rebuild")
    click.echo(f"{count} debits: live state equals the rebuild from stored events")


class PrintSender:
    """The dispatcher's default: writes each notice to standard output instead of a customer."""

    name = "print"

    def send(self, notice: Notice) -> None:
        click.echo(f"-> {notice.debit_id} #{notice.attempt}: {notice.text()} [{notice.notice_id}]")


def _load_sender(path: str) -> Sender:
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(f"cannot load {path!r} ({exc}); expected MODULE:FACTORY") from None
    sender: Sender = factory()
    return sender


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "none"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@main.command()
@spec_option
def diagram(spec_path: Path | None) -> None:
    """Print the debit machine as a Mermaid state diagram, drawn from the spec.

    \b
    Example:
        statemachine diagram > debit.mmd
    """
    click.echo(_load_spec(spec_path).diagram())


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@spec_option
def scenarios(paths: tuple[Path, ...], spec_path: Path | None) -> None:
    """Run golden scenarios (TOML) and report each; exit 1 if any fails.

    Without PATHS, runs the bundled specs/scenarios/. With --spec, checks a changed spec
    against them before it ships.

    \b
    Example:
        statemachine scenarios --spec my-debit.toml
    """
    spec = _load_spec(spec_path)
    files = [f for p in paths for f in (sorted(p.glob("*.toml")) if p.is_dir() else [p])]
    failed = 0
    for path in files or bundled_scenarios():
        problems = Scenario.load(path).run(spec)
        click.echo(f"{'FAIL' if problems else 'ok  '} {path.name}")
        for problem in problems:
            click.echo(f"     {problem}")
        failed += bool(problems)
    if failed:
        raise click.ClickException(f"{failed} scenario(s) failed")
