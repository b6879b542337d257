"""Commands over logs and files: ``replay``, ``import`` and ``diff``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import tzinfo
from pathlib import Path
from typing import Any

import click
import orjson
from tqdm import tqdm

from ..clock import ManualClock
from ..dispatch import CountingSender
from ..engine import Engine
from ..importers import (
    FORMATS,
    ImportFailed,
    ImportOptions,
    ImportTally,
    Record,
    staged,
    write_jsonl,
)
from ..importers import read as read_import
from ..importers.xes import DEFAULT_MAPPING
from ..replay import (
    BatchedReplay,
    LogUnreadable,
    Replay,
    ReplayStopped,
    ReplaySummary,
    html_report,
    replay_logs,
    replay_records,
)
from ..stores.sql import CACHE_SIZE
from .options import (
    db_option,
    import_options,
    load_spec,
    open_engine,
    spec_option,
)


@click.command()
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
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="A channel notices are sent on, in order (counted, nothing is sent); "
                   "name the channels the log's receipt lines name. Default: one, `replay`.")  # fmt: skip
@click.option("--cache", "cache_size", type=click.IntRange(min=1), default=CACHE_SIZE,
              show_default=True,
              help="Debits kept in memory between their events, about 2.5 KB each; those not "
                   "kept are read back from the database when their next event comes.")  # fmt: skip
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
    channels: tuple[str, ...],
    cache_size: int,
) -> None:
    """Replay event logs on event time and print a summary.

    LOGS are JSONL or CSV files in the event format (.gz too), or - for stdin. Notices are
    dispatched on the replay clock (the latest occurred_at seen) through a recording sender:
    no customer is contacted. Bad lines are stored as invalid, with file and line, and
    counted. Replaying again into the same --db changes nothing: a rerun skips the lines of
    each file the database already holds (an interrupted run resumes).

    Lines {"type": "receipt", "notice_id", "channel", "status", "occurred_at", "ref"} are
    providers' delivery receipts, applied in order on their time (as `statemachine receipts`
    does): the summary then shows the delivery rate per channel. Name the channels with
    --channel, in the order notices were sent on them.

    With --format, a line on standard error says how many events the files gave and what was
    read and skipped, as with `statemachine import`; files that give no event at all exit 1
    before a database is opened or created.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl --db march.sqlite
        statemachine replay march.csv.gz --strict --report march.json --html march.html
        statemachine replay --format nacha returns-*.ach --db march.sqlite
        statemachine replay march.jsonl receipts.jsonl --channel sms --channel push
    """
    spec = load_spec(spec_path)
    progress = _progress if sys.stderr.isatty() else None
    for log in logs:  # before the database is opened: a mistyped name creates nothing
        if log != "-" and not Path(log).is_file():
            why = "is a directory" if Path(log).is_dir() else "no such file"
            raise click.ClickException(f"cannot read {log}: {why}")
    with ExitStack() as stack:
        records = None
        if format_ != "events":
            _say_bundled_mapping(format_, mapping)
            tally = ImportTally()
            try:  # the whole import is read before the database is opened
                records = stack.enter_context(
                    staged(format_, logs, ImportOptions(mapping=mapping, timezone=timezone), tally)
                )
            except ImportFailed as exc:
                raise click.ClickException(str(exc)) from None
            if not tally.events:  # nothing to replay: no database either
                raise click.ClickException(_no_events(format_, logs, tally))
            click.echo(f"{tally.events} events imported from {_named(logs)} ({tally.describe()})",
                       err=True)  # fmt: skip
        engine = open_engine(db, spec, clock=ManualClock(), cache_size=cache_size)
        stack.callback(engine.close)
        senders = [CountingSender(name) for name in channels] or None
        feeder: Replay | BatchedReplay = (
            Replay(engine, senders)
            if batch_size == 1
            else BatchedReplay(engine, senders, batch_size=batch_size)
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
    except LogUnreadable as exc:
        raise click.ClickException(
            f"{exc}; what was committed before it stays: replay again to resume once the file "
            "is whole"
        ) from None
    except ReplayStopped as exc:
        click.echo(f"Error: {exc.origin}: {exc.reason}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        # The batch in flight rolled back; every batch before it is committed whole.
        click.echo("interrupted: replay again to resume (lines already stored are skipped)",
                   err=True)  # fmt: skip
        sys.exit(130)


@click.command("import")
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
    _say_bundled_mapping(format_, mapping)
    tally = ImportTally()
    try:
        records = read_import(
            format_, files, ImportOptions(mapping=mapping, timezone=timezone), tally
        )
        count = write_jsonl(_some(records), output if output else sys.stdout.buffer)
    except ImportFailed as exc:
        raise click.ClickException(str(exc)) from None
    except _NoEvents:
        raise click.ClickException(_no_events(format_, files, tally)) from None
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


def _say_bundled_mapping(format_: str, mapping: Path | None) -> None:
    if format_ == "xes" and mapping is None:
        click.echo(f"no --mapping: using the bundled BPI Challenge 2012 mapping {DEFAULT_MAPPING}",
                   err=True)  # fmt: skip


def _no_events(format_: str, files: Sequence[str | Path], tally: ImportTally) -> str:
    """Why an import gave no events: what it read and skipped, and for XES what to try."""
    hint = "; give a mapping that fits the log with --mapping FILE" if format_ == "xes" else ""
    return f"no events in {_named(files)}: {tally.describe()}{hint}"


def _named(files: Sequence[str | Path]) -> str:
    shown = ", ".join(map(str, files[:3]))
    return shown + (f" and {len(files) - 3} more files" if len(files) > 3 else "")


def _progress(records: Iterable[Any]) -> Iterable[Any]:
    return tqdm(records, unit=" lines", desc="replay", file=sys.stderr, mininterval=0.5)


@click.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@spec_option
def diff(first: str, second: str, spec_path: Path | None) -> None:
    """List the debits whose final state or notices differ between two databases.

    For example the same log replayed under two specs: what would the change do?

    \b
    Exit code 1 when any debit differs, as with verify.

    \b
    Example:
        statemachine replay march.jsonl --db today.sqlite
        statemachine replay march.jsonl --db proposed.sqlite --spec proposed.toml
        statemachine diff today.sqlite proposed.sqlite
    """
    spec = load_spec(spec_path)
    with open_engine(first, spec, create=False) as a, open_engine(second, spec, create=False) as b:
        ids = sorted(set(a.store.debit_ids()) | set(b.store.debit_ids()))
        differ = 0
        for debit_id in ids:
            left, right = _outcome(a, debit_id), _outcome(b, debit_id)
            if left != right:
                differ += 1
                click.echo(f"{debit_id}\n  A: {left}\n  B: {right}")
    click.echo(f"{differ} of {len(ids)} debits differ")
    if differ:
        sys.exit(1)


def _outcome(engine: Engine, debit_id: str) -> str:
    debit = engine.get(debit_id)
    if debit is None:
        return "absent"
    review = " needs review" if debit.needs_review else ""
    notices = ", ".join(
        sorted(f"{n.kind}@{n.attempt} {n.status}" for n in engine.notices(debit_id))
    )
    return f"{debit.state}@{debit.attempt}{review}; notices: {notices or 'none'}"
