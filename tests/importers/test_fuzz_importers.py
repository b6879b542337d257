"""Fuzzing the importers with broken copies of the real files.

Real files (webhook bodies, NACHA files, ISO 20022 messages, XES logs) are cut at random
offsets, have bytes flipped, inserted, deleted or copied elsewhere, and go through every
importer, by ``statemachine.importers.read`` and by ``statemachine import``. Whatever the
damage, an import either gives events in the event format or stops with the package's own
error naming a file; the command exits 0 having written its output, or 1 having written
nothing (no output file, no temporary file), never with a traceback.

``STATEMACHINE_FUZZ_EXAMPLES`` sets the examples per test (default 40, a few seconds in all);
a longer run is ``STATEMACHINE_FUZZ_EXAMPLES=5000 pytest tests/importers/test_fuzz_importers.py``.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import REALDATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemachine.cli import main
from statemachine.errors import StateMachineError
from statemachine.events import FIELDS
from statemachine.importers import ImportFailed, read

EXAMPLES = int(os.environ.get("STATEMACHINE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    # Inputs are a few kilobytes: an import that takes seconds is a hang in the making.
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FORMATS = ["gocardless", "nacha", "iso20022", "xes"]
# Bytes that mean something to one format or another, for insertions.
TOKENS = [
    b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b'"', b"'", b"<!--", b"]]>", b"<![CDATA[",
    b"{", b"}", b"[", b"]", b'"events"', b":", b",", b"null", b"1e999", b"\\u0000", b"\\ud800",
    b"\n", b"\r\n", b"\x00", b"\xff", b"\xef\xbb\xbf", b"9" * 94, b" " * 94, b"6", b"7", b"799",
    b"R01", b"R68", b"R71", b"-", b"+", b"T", b"Z", b"+25:00", b"9999-12-31T23:59:59-23:59",
    b"0001-01-01T00:00:00+14:00", b"NOTPROVIDED", b"RJCT", b"PART", b"BOOK", b"INFO", b"true",
    b"A_SUBMITTED", b"A_APPROVED", b"A_DECLINED", b"concept:name", b"time:timestamp",
    b'encoding="UTF-16"', b'encoding="UTF-3"', b"<log>", b"<trace>", b"<event>",
]  # fmt: skip


@cache
def seeds(format: str) -> tuple[tuple[str, bytes], ...]:
    """The real files of a format as (name, bytes); XES logs as their first twelve traces."""
    if format == "gocardless":
        paths = sorted(REALDATA.glob("gocardless_*/*.json"))
        bodies = [(p.name, p.read_bytes()) for p in paths]
        lines = b"".join(orjson.dumps(orjson.loads(data)) + b"\n" for _, data in bodies[:6])
        return (*bodies, ("webhooks.jsonl", lines))
    if format == "nacha":
        return tuple((p.name, p.read_bytes()) for p in sorted(REALDATA.glob("nacha_*/*.ach")))
    if format == "iso20022":
        return tuple((p.name, p.read_bytes()) for p in sorted(REALDATA.glob("iso20022_*/*.xml")))
    logs = []
    for path in sorted(REALDATA.glob("eventlogs_*/*.xes.gz")):
        with gzip.open(path) as stream:
            text = stream.read(8 * 1024 * 1024)  # BPI 2012 has 6.7 MB of log attributes first
        log = text.index(b"<log")
        head = text[: text.index(b">", log) + 1]  # the prolog and the <log> tag
        first = text.index(b"<trace", log)
        ends = [first]
        while len(ends) <= 12 and text.find(b"</trace>", ends[-1]) > 0:
            ends.append(text.index(b"</trace>", ends[-1]) + len(b"</trace>"))
        cut = head + b"\n" + text[first : ends[-1]] + b"\n</log>\n"
        name = path.name.removesuffix(".gz")
        logs += [(name, cut), (path.name, gzip.compress(cut, mtime=0))]
    return tuple(logs)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` cut, with bytes flipped, inserted, deleted or copied elsewhere."""
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        at = draw(st.integers(0, size))
        kind = draw(st.sampled_from(["cut", "flip", "insert", "token", "delete", "copy"]))
        if kind == "cut":
            data = data[:at]
        elif kind == "flip" and size:
            at = min(at, size - 1)
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "token":
            data = data[:at] + draw(st.sampled_from(TOKENS)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 64)) :]
        elif kind == "copy" and size:
            start = draw(st.integers(0, size - 1))
            data = data[:at] + data[start : start + draw(st.integers(1, 256))] + data[at:]
    return data


@st.composite
def imports(draw: st.DrawFn, format: str) -> list[tuple[str, bytes]]:
    """One damaged real file, with up to two intact ones of the format (files are joined)."""
    files = seeds(format)
    name, data = draw(st.sampled_from(files))
    if name.endswith(".gz") and draw(st.booleans()):
        damage = gzip.compress(draw(damaged(gzip.decompress(data))), mtime=0)  # the XML inside
    else:
        damage = draw(damaged(data))
    others = draw(st.lists(st.sampled_from(files), max_size=2, unique_by=lambda seed: seed[0]))
    chosen = [("broken-" + name, damage)] + [seed for seed in others if seed[0] != name]
    return draw(st.permutations(chosen))


def written(folder: Path, files: list[tuple[str, bytes]]) -> list[Path]:
    paths = []
    for name, data in files:
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def check_refusal(error: Exception, paths: list[Path]) -> None:
    """A refusal is the package's own error, and names one of the files."""
    assert isinstance(error, StateMachineError), repr(error)
    assert any(str(error).startswith(f"{path}: ") for path in paths), str(error)
    if isinstance(error, ImportFailed):
        assert error.path in map(str, paths)


def check_events(records: list[tuple[str, dict[str, object]]], paths: list[Path]) -> None:
    for origin, event in records:
        assert any(origin.startswith(f"{path}:") for path in paths), origin
        assert tuple(event) == FIELDS
        assert isinstance(event["occurred_at"], str)
        assert datetime.fromisoformat(event["occurred_at"]).utcoffset() is not None
        orjson.dumps(event)  # writable as JSON


def fuzz_read(format: str) -> Callable[[list[tuple[str, bytes]]], None]:
    def check(files: list[tuple[str, bytes]]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            paths = written(Path(folder), files)
            try:
                records = list(read(format, paths))
            except Exception as error:
                check_refusal(error, paths)
            else:
                check_events(records, paths)

    return check


def fuzz_command(format: str) -> Callable[[list[tuple[str, bytes]]], None]:
    def check(files: list[tuple[str, bytes]]) -> None:
        with tempfile.TemporaryDirectory() as inputs, tempfile.TemporaryDirectory() as outputs:
            paths = written(Path(inputs), files)
            out = Path(outputs) / "events.jsonl"
            args = ["import", format, *map(str, paths), "-o", str(out)]
            result = CliRunner().invoke(main, args)
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                result.exc_info
            )
            assert sorted(p.name for p in Path(inputs).iterdir()) == sorted(p.name for p in paths)
            if result.exit_code == 0:
                assert list(Path(outputs).iterdir()) == [out]
                lines = out.read_bytes().splitlines()
                assert lines
                assert f"{len(lines)} events written to {out}" in result.stderr
                check_events([(f"{paths[0]}:", orjson.loads(line)) for line in lines], paths)
            else:
                assert result.exit_code == 1, result.output
                assert list(Path(outputs).iterdir()) == []  # no output, no temporary file
                error = result.stderr.splitlines()[-1]
                assert error.startswith("Error: ")
                assert any(str(path) in error for path in paths), error

    return check


@pytest.mark.parametrize("format", FORMATS)
def test_read_refuses_damaged_files_by_name_or_reads_them(realdata: Path, format: str) -> None:
    given(imports(format))(FUZZ(fuzz_read(format)))()


@pytest.mark.parametrize("format", FORMATS)
def test_import_command_writes_all_or_nothing_and_never_a_traceback(
    realdata: Path, format: str
) -> None:
    given(imports(format))(FUZZ(fuzz_command(format)))()


LAUGHS = (
    b'<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10) for n in range(1, 10))
    + b"]>\n"
)


def poisoned(data: bytes, doctype: bytes, reference: bytes, value: bytes) -> bytes:
    """A real file with a document type declaration after its XML declaration and an entity
    reference in place of one of its values."""
    declaration, _, rest = data.partition(b"?>")
    return declaration + b"?>\n" + doctype + rest.replace(value, reference, 1)


@pytest.mark.parametrize("attack", ["laughs", "xxe"])
@pytest.mark.parametrize(
    ("format", "name", "value"),
    [
        ("iso20022", "pain008-musterfile.xml", b"MsgId-CHDD-Musterfile"),
        ("xes", "bpic2012.xes", b"173688"),
        ("xes", "bpic2012.xes.gz", b"173688"),
    ],
)
def test_real_files_carrying_entities_are_refused(
    realdata: Path, tmp_path: Path, format: str, name: str, value: bytes, attack: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = dict(seeds(format))[name]
    compressed = name.endswith(".gz")
    text = gzip.decompress(data) if compressed else data
    if attack == "laughs":
        text = poisoned(text, LAUGHS, b"&lol9;", value)
    else:
        doctype = b'<!DOCTYPE d [<!ENTITY xxe SYSTEM "%s">]>\n' % secret.as_uri().encode()
        text = poisoned(text, doctype, b"&xxe;", value)
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if compressed else text)
    with pytest.raises(ImportFailed) as refused:
        list(read(format, [path]))
    assert str(refused.value).startswith(f"{path}: line ")
    assert "without entity declarations" in str(refused.value)
    out = tmp_path / "out" / "events.jsonl"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["import", format, str(path), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"Error: {refused.value}"
    assert "TOP-SECRET" not in result.output
    assert list(out.parent.iterdir()) == []
