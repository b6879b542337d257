"""Fuzzing the way in: any JSON value, any bytes, any log file.

Inputs are arbitrary JSON values (huge integers, NaN, NUL characters, lone surrogates, deep
nesting), objects that look like events with plausible or hostile fields (times at the ends of
the calendar, offsets of almost a day, attempts and amounts past 64 bits), arbitrary bytes
(invalid UTF-8, NUL bytes) and valid events cut short. They go through ``engine.ingest`` on
every store, and as log files (JSONL, CSV, gzipped, split and joined at random, gzip cut
short) through ``statemachine replay`` and ``replay_logs`` with both runners. Whatever comes,
ingest stores exactly one arrival with a verdict and a reason and never raises; replay reads
every non-blank line and exits 0, 1 naming the file, or 2 under ``--strict``, never with a
traceback. Valid logs replay to the same debits and notices whatever the batch size.

``STATEMACHINE_FUZZ_EXAMPLES`` sets the examples per test (default 40, a few seconds each);
a longer run is ``STATEMACHINE_FUZZ_EXAMPLES=5000 pytest tests/replay/test_fuzz_ingest.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
import tracemalloc
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from conftest import EngineFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemachine import Engine, Event, ManualClock
from statemachine.cli import main
from statemachine.events import EVENT_TYPES, FIELDS, MAX_ATTEMPT
from statemachine.precedence import Verdict
from statemachine.replay import (
    BatchedReplay,
    LogUnreadable,
    Replay,
    ReplayStopped,
    ReplaySummary,
    replay_logs,
)
from statemachine.testing import BASE_TIME, deliveries, histories

EXAMPLES = int(os.environ.get("STATEMACHINE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    # Inputs are a few kilobytes: an ingest or a replay that takes seconds is a hang in the making.
    deadline=timedelta(seconds=5),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- values --------------------------------------------------------------------------------

HUGE = [2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**400]
ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\ufeff", "\u202e", "9" * 5000,
            "²", "--1", "１", "NaN", "Infinity", "null", "{", '"', ",", "\r", "\n"]  # fmt: skip
# Text of any code point, lone surrogates included (hypothesis leaves them out by default).
texts = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(ODD_TEXT)
integers = st.integers() | st.sampled_from(HUGE) | st.integers(-(10**30), 10**30)
scalars = st.none() | st.booleans() | integers | st.floats() | texts


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
) | st.sampled_from([nested(300), nested(1000), nested(5000, "\ud800")])

OFFSETS = [timedelta(0), timedelta(hours=8), timedelta(hours=-5), timedelta(hours=23, minutes=59),
           -timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)]  # fmt: skip
offsets = st.sampled_from(OFFSETS) | st.timedeltas(-timedelta(hours=23), timedelta(hours=23))
# The event format's bounds, just inside (the first two) and just outside, in UTC.
EDGES = ["1900-01-01T00:00:00+00:00", "9000-01-01T00:00:00+00:01", "8999-12-31T23:59:59.999999Z",
         "1900-01-01T23:00:00+23:01", "9000-01-01T00:00:00+00:00", "8999-12-31T23:59:59-23:59",
         "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.999999-23:59"]  # fmt: skip


@st.composite
def valid_times(draw: st.DrawFn) -> object:
    """``occurred_at`` as the event format takes it: ISO 8601 with an offset of up to a day,
    in any year from 1901 to 8999, or at the bounds, as text or as a datetime."""
    moment = draw(st.datetimes(datetime(1901, 1, 1), datetime(8999, 1, 1)))
    aware = moment.replace(tzinfo=timezone(draw(offsets)))
    return draw(st.sampled_from([aware.isoformat(), aware.isoformat(sep=" "), aware, *EDGES[:3]]))


@st.composite
def times(draw: st.DrawFn) -> object:
    """``occurred_at`` the event format refuses, or nearly: the calendar's ends, past the
    bounds by an offset, naive, a date alone, or not a time at all."""
    moment = draw(
        st.sampled_from([datetime.min, datetime.max, datetime(1900, 1, 1), datetime(9000, 1, 1)])
        | st.datetimes()
    )
    aware = moment.replace(tzinfo=timezone(draw(offsets)))
    return draw(
        st.sampled_from([aware.isoformat(), moment.isoformat(), moment.date().isoformat(),
                         aware.isoformat(timespec="hours"), *EDGES[3:]])
        | json_values
    )  # fmt: skip


# Text any store can hold: no lone surrogates, no NUL.
names = st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=20).filter(str.strip)
json_safe = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | names,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=8,
)  # fmt: skip
PLAUSIBLE: dict[str, st.SearchStrategy[object]] = {
    # Few ids mostly, so that duplicates, reused event_ids and shared debits come up often.
    "event_id": st.sampled_from(["gw-1", "gw-2", "gw-3", "st-1", "é" * 1000]) | names,
    "debit_id": st.sampled_from(["d-1", "d-2", "loan-42/2026-03"]) | names,
    "type": st.sampled_from(EVENT_TYPES),
    "attempt": st.integers(1, 3) | st.just(MAX_ATTEMPT),
    "occurred_at": valid_times(),
    "source": st.sampled_from(["gateway", "settlement", "internal", "operator"]) | names,
    "amount": st.integers(0, 10**7) | st.just(2**63 - 1),
    "currency": st.sampled_from(["CNY", "EUR"]),
    "reason": st.sampled_from(["AM04", "R01", "ARUDD-2", "TIMEOUT"]) | names,
    "data": st.dictionaries(names, json_safe, max_size=3),
}
BAD_TEXT = ["", " ", "a\x00b", "x\ud800", "\udfff", "x" * 1001, 1, [], {}]
HOSTILE: dict[str, st.SearchStrategy[object]] = {
    "event_id": st.sampled_from(BAD_TEXT),
    "debit_id": st.sampled_from(BAD_TEXT),
    "type": st.sampled_from(["notice_sent", "SUCCEEDED", "paid", *BAD_TEXT]),
    "attempt": st.sampled_from([0, -1, MAX_ATTEMPT + 1, *HUGE, True, 1.0, "1"]),
    "occurred_at": times(),
    "source": st.sampled_from(BAD_TEXT),
    "amount": st.sampled_from([-1, *HUGE[4:], 1.5, "100", True]),
    "currency": st.sampled_from(["cny", "EURO", "€UR", "", "CN\x00"]),
    "reason": st.sampled_from(BAD_TEXT[2:]),
    "data": st.sampled_from([{"deep": nested(300)}, {"n": 2**64}, {"x": float("nan")},
                             {"\ud800": 1}, {"s": "\udc80"}, [], "x"]),
}  # fmt: skip


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, object]:
    """An event's fields, plausible (extremes within the format's bounds included), then up to
    three of them broken: hostile, anything at all, null or left out; sometimes a field more."""
    fields: dict[str, object] = {}
    for name in FIELDS:
        if name in ("event_id", "debit_id", "type", "occurred_at") or draw(st.booleans()):
            fields[name] = draw(PLAUSIBLE[name])
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        damage = draw(st.sampled_from(["hostile", "hostile", "any", "null", "absent"]))
        if damage == "absent":
            fields.pop(name, None)
        else:
            fields[name] = (
                draw(HOSTILE[name]) if damage == "hostile"
                else None if damage == "null" else draw(json_values)
            )  # fmt: skip
    if draw(st.sampled_from([False] * 9 + [True])):
        fields[draw(texts | st.sampled_from(["ocurred_at", "notice"]))] = draw(json_values)
    return fields


@st.composite
def legacy_notices(draw: st.DrawFn) -> dict[str, object]:
    """A legacy system's record of a notice it sent (DESIGN's ``notice_sent``), fields as for
    events: plausible or hostile."""
    record: dict[str, object] = {"type": "notice_sent"}
    record["notice"] = draw(st.sampled_from(["failed", "succeeded"]) | json_values)
    for name in ("debit_id", "attempt", "occurred_at"):
        record[name] = draw(PLAUSIBLE[name] | HOSTILE[name])
    return record


def valid_events() -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        event_id=st.sampled_from(["gw-1", "gw-2", "gw-3"]),
        debit_id=st.sampled_from(["d-1", "d-2"]),
        type=st.sampled_from([t for t in EVENT_TYPES if t != "retried"]),
        occurred_at=st.datetimes(
            datetime(2026, 3, 1), datetime(2026, 4, 1), timezones=st.just(UTC)
        ),
        amount=st.just(356000),
    )


def dumped(value: object, ascii_only: bool = False) -> bytes:
    """``value`` as JSON: orjson where it can, else the standard library (NaN, huge integers
    and lone surrogates pass there), its text kept as is even where that is not UTF-8."""
    if not ascii_only:
        try:
            return orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):
            pass
    try:
        text = json.dumps(value, ensure_ascii=ascii_only, default=str)
    except (ValueError, RecursionError):
        return b"[" * 2000
    return text.encode("utf-8", "surrogatepass")


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """One line of a log: an event, something like one, any JSON value, a valid event cut short,
    or any bytes."""
    kind = draw(
        st.sampled_from(["valid", "event-like", "event-like", "legacy", "json", "cut", "bytes"])
    )
    if kind == "valid":
        return draw(valid_events()).to_json().encode()
    if kind == "legacy":
        return dumped(draw(legacy_notices()), draw(st.booleans()))
    if kind == "event-like":
        return dumped(draw(event_like()), draw(st.booleans()))
    if kind == "json":
        return dumped(draw(json_values), draw(st.booleans()))
    if kind == "cut":
        line = draw(valid_events()).to_json().encode()
        return line[: draw(st.integers(0, len(line) - 1))]
    return draw(st.binary(max_size=64))


# -- ingest on every store -----------------------------------------------------------------


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """What ``ingest`` is handed: (form, raw, parsed)."""
    form = draw(st.sampled_from(["mapping", "value", "text", "bytes", "parsed"]))
    value = draw(event_like() | json_values | valid_events().map(Event.to_dict))
    if form == "mapping":
        return form, value if isinstance(value, Mapping) else {"event": value}, None
    if form == "value":  # a caller's json.loads of a body: not always an object
        return form, value, None
    line = draw(lines())
    if form == "parsed":  # a CSV row: the fields, and the line they came from
        fields = value if isinstance(value, Mapping) else {"event_id": value}
        return form, line.decode("utf-8", "replace"), fields
    if form == "text":  # lone surrogates survive in a str
        return form, line.decode("utf-8", "surrogateescape"), None
    return form, line, None


def arrivals(engine: Engine) -> int:
    return sum(engine.metrics().events_by_verdict.values())


def check_ingest(engine: Engine, number: int, raw: Any, parsed: Any) -> None:
    before = arrivals(engine)
    origin = f"fuzz:{number}"
    result = engine.ingest(raw, origin=origin, parsed=parsed)
    assert isinstance(result.verdict, Verdict)
    assert result.reason
    # Exactly one arrival, stored where the result says, with its verdict and reason.
    assert arrivals(engine) == before + 1
    stored = engine.history(result.debit_id) if result.debit_id else engine.rejected()
    last = stored[-1]
    assert (last.verdict, last.reason, last.origin) == (result.verdict, result.reason, origin)
    assert last.raw is not None
    if result.verdict is not Verdict.INVALID:
        accepted = last.event
        assert accepted is not None
        assert (accepted.event_id, accepted.debit_id) == (result.event_id, result.debit_id)
        assert Event.from_json(accepted.to_json()) == accepted


def test_ingest_stores_anything_once_and_never_raises(make_engine: EngineFactory) -> None:
    # Anything at all, or mostly event-like objects, so that ids meet and the store decides.
    events = event_like() | valid_events().map(Event.to_dict)
    arrivals_ = st.lists(inputs(), min_size=1, max_size=6) | st.lists(
        st.tuples(st.just("mapping"), events, st.none()), min_size=1, max_size=6
    )

    @FUZZ
    @given(arrivals_)
    def check(batch: list[tuple[str, Any, Any]]) -> None:
        engine = make_engine(clock=ManualClock(BASE_TIME))
        try:
            for number, (_, raw, parsed) in enumerate(batch):
                check_ingest(engine, number, raw, parsed)
            assert engine.verify() == []
        finally:
            engine.close()  # the fixture drops the store at the end

    check()


# -- logs ----------------------------------------------------------------------------------

COLUMNS = (*FIELDS, "notice")  # the event's fields, and a legacy record's notice
HEADER = ",".join(COLUMNS).encode()


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dumped(value).decode("utf-8", "surrogateescape")


@st.composite
def csv_lines(draw: st.DrawFn) -> bytes:
    """A CSV row under the event columns: an event's fields, or cells of anything."""
    if draw(st.booleans()):
        fields = draw(event_like() | legacy_notices() | valid_events().map(Event.to_dict))
        cells = [csv_cell(fields.get(name)) for name in COLUMNS]
    else:
        cells = draw(st.lists(texts, max_size=len(COLUMNS) + 2))
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue().encode("utf-8", "surrogatepass")


@st.composite
def logs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A log file: (name, bytes). Lines joined, then split and joined again at random."""
    kind = draw(st.sampled_from(["jsonl", "jsonl.gz", "csv", "csv.gz", "cut.gz"]))
    if kind.startswith("csv"):
        body = [HEADER, *draw(st.lists(csv_lines(), max_size=12))]
    else:
        body = draw(st.lists(lines(), max_size=12))
    data = b"\n".join(body) + draw(st.sampled_from([b"", b"\n", b"\r\n", b"\n\n"]))
    for _ in range(draw(st.integers(0, 3))):  # a line break inserted, or one taken out
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data = data[:at] + draw(st.sampled_from([b"\n", b"\r\n", b"\n \n"])) + data[at:]
        elif b"\n" in data[at:]:
            cut = data.index(b"\n", at)
            data = data[:cut] + data[cut + 1 :]
    if kind == "cut.gz":
        packed = gzip.compress(data, mtime=0)
        return "cut.jsonl.gz", packed[: draw(st.integers(0, len(packed) - 1))]
    if kind.endswith(".gz"):
        return f"log.{kind}", gzip.compress(data, mtime=0)
    return f"log.{kind}", data


def content_lines(name: str, data: bytes) -> int | None:
    """The lines replay reads from the log: its non-blank lines, a CSV's header aside; None
    where the gzip stream is cut short."""
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, OSError):
            return None
    count = sum(1 for line in data.split(b"\n") if line.strip())
    return max(count - 1, 0) if ".csv" in name else count


def check_replay_command(folder: Path, name: str, data: bytes, args: list[str]) -> None:
    log = folder / name
    log.write_bytes(data)
    db = folder / "replay.sqlite"
    result = CliRunner().invoke(main, ["replay", str(log), "--db", str(db), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    expected = content_lines(name, data)
    if result.exit_code == 0:
        assert expected is not None or name.endswith(".gz")
        read = next(line for line in result.stdout.splitlines() if line.startswith("lines read"))
        if expected is not None:
            assert read.split() == ["lines", "read", str(expected)]
    elif result.exit_code == 1:
        error = result.stderr.splitlines()[-1]
        assert error.startswith(f"Error: {log}: "), error
        assert expected is None, error  # only a cut gzip stream
    else:
        assert result.exit_code == 2, result.output
        assert "--strict" in args
        assert result.stderr.splitlines()[-1].startswith(f"Error: {log}:"), result.stderr


@given(logs(), st.sampled_from([[], ["--strict"], ["--batch", "1"], ["--batch", "3"]]))
@FUZZ
def test_replay_command_reads_every_line_and_never_a_traceback(
    log: tuple[str, bytes], args: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_replay_command(Path(folder), *log, args)


def replayed(
    runner: Replay | BatchedReplay, path: Path, strict: bool
) -> ReplaySummary | LogUnreadable | ReplayStopped:
    """The summary of a replay, or the package's error that stopped it."""
    try:
        return replay_logs(runner, [path], strict=strict)
    except (LogUnreadable, ReplayStopped) as error:
        return error


@given(logs(), st.sampled_from([1, 2, 3, 5, 1000]), st.booleans())
@FUZZ
def test_replay_logs_with_either_runner(
    log: tuple[str, bytes], batch_size: int, strict: bool
) -> None:
    name, data = log
    expected = content_lines(name, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        with Engine.open(Path(folder) / "replay.sqlite", clock=ManualClock()) as engine:
            runner: Replay | BatchedReplay = (
                Replay(engine) if batch_size == 1 else BatchedReplay(engine, batch_size=batch_size)
            )
            outcome = replayed(runner, path, strict)
            if isinstance(outcome, LogUnreadable):
                assert expected is None
                assert str(outcome).startswith(f"{path}: truncated or corrupt after line ")
            elif isinstance(outcome, ReplayStopped):
                assert strict
                assert str(outcome).startswith(f"{path}:")
            else:
                assert expected is not None or name.endswith(".gz")
                if expected is not None:
                    assert outcome.lines == expected
                assert sum(outcome.run_verdicts.values()) <= outcome.lines
                assert len(outcome.invalid) == outcome.run_verdicts["invalid"]
                assert engine.misinformed() == []
            assert engine.verify() == []


# -- valid logs: the batch size changes nothing ---------------------------------------------


@st.composite
def valid_logs(draw: st.DrawFn) -> bytes:
    """True histories of a few debits, delivered out of order with duplicates and noise, the
    debits' streams interleaved: one JSONL log."""
    debits = st.lists(histories(), min_size=1, max_size=3, unique_by=lambda h: h.debit_id)
    streams = [draw(deliveries(history)) for history in draw(debits)]
    order = draw(st.permutations([n for n, stream in enumerate(streams) for _ in stream]))
    cursors = [iter(stream) for stream in streams]
    return b"".join(next(cursors[n]).to_json().encode() + b"\n" for n in order)


def outcomes(db: Path) -> dict[str, object]:
    with Engine.open(db) as engine:
        return {
            debit_id: (engine.get(debit_id), sorted(engine.notices(debit_id)))
            for debit_id in sorted(engine.store.debit_ids())
        }


@given(valid_logs())
@FUZZ
def test_valid_logs_replay_alike_whatever_the_batch(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "valid.jsonl"
        log.write_bytes(data)
        seen = []
        for number, args in enumerate([["--batch", "1"], ["--batch", "7"], ["--strict"]]):
            db = Path(folder) / f"{number}.sqlite"
            result = CliRunner().invoke(main, ["replay", str(log), "--db", str(db), *args])
            assert result.exit_code == 0, result.output
            assert "invalid" not in result.stdout.split("database totals")[0]
            seen.append(outcomes(db))
        assert seen[0], "no debits"
        assert seen[1] == seen[0]
        assert seen[2] == seen[0]


# -- memory --------------------------------------------------------------------------------


def replay_peak(folder: Path, count: int) -> int:
    """The peak of memory allocated while replaying a log of ``count`` lines, a tenth invalid."""
    log = folder / f"{count}.jsonl"
    with log.open("wb") as out:
        for n in range(count):
            moment = BASE_TIME + timedelta(minutes=n)
            fact = Event(event_id=f"gw-{n}", debit_id=f"d-{n}", type="failed", occurred_at=moment)
            out.write(b'{"event_id": "x%d", "\xff"}\n' % n if n % 10 == 0 else b"")
            out.write(fact.to_json().encode() + b"\n")
    # A cache of few debits: the log outgrows it, as a month's log outgrows the default.
    with Engine.open(folder / f"{count}.sqlite", clock=ManualClock(), cache_size=50) as engine:
        tracemalloc.start()
        try:
            summary = replay_logs(BatchedReplay(engine, batch_size=200), [log])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert summary.lines == count + (count + 9) // 10
    return peak


def test_replay_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    # Past the notices a replay keeps at hand (RECENT), nothing may grow with the log.
    small, large = replay_peak(tmp_path, 1100), replay_peak(tmp_path, 3300)
    assert large < small * 1.5, (small, large)
