"""A NACHA file read record by record, its layout, counts and totals checked on the way.

A NACHA file is fixed-width text, one 94-character record a line: a file header (``1``),
batches (``5`` header, ``6`` entries each followed by their ``7`` addenda, ``8`` control), a
file control (``9``) and lines of ``9`` padding. What the codes in them mean is in
:mod:`.codes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

import attrs

from ...events import REINSTATED, REVERSED, SUBMITTED, SUCCEEDED
from .. import ImportFailed, ImportOptions, ImportTally, Record
from .._common import aware_time, event_record
from .codes import (
    CONTESTED_CODES,
    DEBIT_ENTRIES,
    DISHONORED_CODES,
    NO_MONEY,
    RETURN_ENTRIES,
    RETURN_TYPES,
    STAGE_DELAY,
    UNSUPPORTED_SEC,
    stage,
)

PREFIX: Final = "nacha:"
SOURCE: Final = "settlement"
CURRENCY: Final = "USD"
WIDTH: Final = 94
PADDING: Final = "9" * WIDTH

# Records that may end early: the trailing fields of these are optional (names, reserved).
_SHORTEST: Final[Mapping[str, int]] = {"1": 40, "9": 55}
_HEADER: Final = "a NACHA file header record ('101...', 94 characters)"


@attrs.define
class _Batch:
    line: int
    number: str
    fields: dict[str, str]
    mapped: bool
    advice: bool
    count: int = 0
    debits: int = 0
    credits: int = 0


@attrs.define
class _Entry:
    line: int
    code: str
    amount: int
    trace: str
    fields: dict[str, str]
    addenda: int = 0
    # Addenda types seen (98 notification of change, 99 return) and return codes seen.
    kinds: set[str] = attrs.Factory(set)
    codes: list[str] = attrs.Factory(list)
    events: int = 0

    @property
    def debit(self) -> bool:
        """Whether the entry moves money from the receiver: a debit, neither prenote nor zero."""
        return self.code[1] not in "1234" and self.code not in NO_MONEY and self.amount > 0


@attrs.define
class NachaFile:
    """One file read record by record, its layout, counts and totals checked on the way."""

    path: Path
    options: ImportOptions
    tally: ImportTally
    records: list[Record] = attrs.Factory(list)
    batch: _Batch | None = None
    entry: _Entry | None = None
    key: str = ""
    at: datetime = datetime.min
    batches: int = 0
    count: int = 0
    debits: int = 0
    credits: int = 0
    advice: bool = False

    def events(self) -> list[Record]:
        """Every event of the file, each with its origin ``FILE:LINE``, once it is all read."""
        lines = iter(_lines(self.path))
        last, header = next(lines)
        self._file_header(last, header)
        for last, raw in lines:
            if raw == PADDING:  # the file control is the one record starting 9 before padding
                break
            text = self._fit(last, raw)
            if text[0] == "9":
                self._close_entry(last)
                self._file_control(last, text)
                self._padding(lines)
                return self.records
            self._record(last, text)
        problem = "the file ends without its file control record (type 9): a truncated file?"
        raise self._fail(last, problem)

    def _fail(self, line: int, problem: str) -> ImportFailed:
        return ImportFailed(self.path, f"line {line}", problem)

    def _digits(self, line: int, text: str, start: int, end: int, name: str) -> str:
        value = text[start:end]
        if not (value.isascii() and value.isdigit()):
            problem = f"{name} (columns {start + 1}-{end}): expected {end - start} digits"
            raise self._fail(line, f"{problem}, got {value!r}")
        return value

    def _fit(self, line: int, text: str) -> str:
        """The record padded to 94 characters, if only optional trailing fields are missing."""
        if not _SHORTEST.get(text[:1], WIDTH) <= len(text) <= WIDTH:
            problem = f"expected a {WIDTH}-character record, got "
            if not text.strip():
                raise self._fail(line, problem + "an empty line")
            truncated = " (a truncated record?)" if len(text) < WIDTH else ""
            raise self._fail(line, f"{problem}{len(text)} characters{truncated}")
        return text.ljust(WIDTH)

    def _file_header(self, line: int, raw: str) -> None:
        text = self._fit(line, raw) if raw.startswith("1") else raw
        if not text.startswith("1") or text[34:40] != "094101":
            raise self._fail(line, f"expected {_HEADER}, got {_glimpse(text)}")
        date, time = text[23:29], text[29:33].strip()
        try:
            moment = datetime.strptime(date + (time or "0000"), "%y%m%d%H%M")
        except ValueError:
            problem = f"file creation date and time: expected YYMMDD HHMM, got {text[23:33]!r}"
            raise self._fail(line, problem) from None
        # NACHA times carry no zone: they are read in the zone the user named.
        self.at = aware_time(moment, self.options.timezone)
        # Immediate origin, creation date, time and modifier identify a file in the scheme.
        self.key = f"{text[13:23].strip()}-{date}{time}{text[33]}"

    def _record(self, line: int, text: str) -> None:
        kind = text[0]
        if kind in "67" and self.batch is not None and self.batch.advice:
            self.batch.count += 1  # an advice's entries have another layout: counted only
            if kind == "6":
                self.tally.read += 1
                self.tally.skip("entries of advice batches (another layout)", "ADV")
            return None
        if kind == "7":
            return self._addenda(line, text)
        self._close_entry(line)
        if kind == "5":
            self._batch_header(line, text)
        elif kind == "6":
            self._entry(line, text)
        elif kind == "8":
            self._batch_control(line, text)
        elif kind == "1":
            raise self._fail(line, "expected one file header only, got a second (type 1)")
        else:
            problem = f"expected a record of type 1, 5, 6, 7, 8 or 9, got {_glimpse(text)}"
            raise self._fail(line, problem)

    def _open_batch(self, line: int, what: str) -> _Batch:
        if self.batch is None:
            raise self._fail(line, f"expected a batch header (type 5) before {what}")
        return self.batch

    def _batch_header(self, line: int, text: str) -> None:
        if self.batch is not None:
            problem = f"expected the batch control (type 8) of the batch at line {self.batch.line}"
            raise self._fail(line, f"{problem} before another batch header")
        sec = text[50:53]
        if not sec.isalpha():
            raise self._fail(line, f"SEC code: expected three letters (PPD, WEB, ...), got {sec!r}")
        self.advice = self.advice or sec == "ADV"
        fields = {
            "sec_code": sec,
            "company_name": text[4:20].strip(),
            "company_id": text[40:50].strip(),
            "entry_description": text[53:63].strip(),
            "effective_date": text[69:75].strip(),
        }
        number = self._digits(line, text, 87, 94, "batch number")
        self.batch = _Batch(line, number, fields, sec not in UNSUPPORTED_SEC, sec == "ADV")

    def _entry(self, line: int, text: str) -> None:
        batch = self._open_batch(line, "an entry detail record")
        code = self._digits(line, text, 1, 3, "transaction code")
        amount = int(self._digits(line, text, 29, 39, "amount"))
        trace = self._digits(line, text, 79, 94, "trace number")
        if text[78] not in "01":
            problem = f"addenda record indicator (column 79): expected 0 or 1, got {text[78]!r}"
            raise self._fail(line, problem)
        batch.count += 1
        self.tally.read += 1
        if code[1] in "1234":
            batch.credits += amount
        else:
            batch.debits += amount
        fields = {
            "transaction_code": code,
            **batch.fields,
            "individual_id": text[39:54].strip(),
            "receiving_dfi": text[3:11],
        }
        entry = _Entry(line, code, amount, trace, fields)
        if text[78] == "1":
            self.entry = entry
        else:
            self._finish(entry)

    def _addenda(self, line: int, text: str) -> None:
        entry = self.entry
        if entry is None or self.batch is None:
            problem = "expected an entry detail record (type 6) with addenda record indicator 1"
            raise self._fail(line, f"{problem} before an addenda record (type 7)")
        entry.addenda += 1
        self.batch.count += 1
        kind = text[1:3]
        entry.kinds.add(kind)
        if kind == "99":
            self._return(line, text, entry)

    def _close_entry(self, line: int) -> None:
        """An entry with addenda ends at the next record that is not an addenda."""
        entry, self.entry = self.entry, None
        if entry is None:
            return
        if entry.addenda == 0:
            problem = f"expected an addenda record (type 7): the entry at line {entry.line} has "
            raise self._fail(line, problem + "addenda record indicator 1")
        self._finish(entry)

    def _finish(self, entry: _Entry) -> None:
        assert self.batch is not None  # entries are only read inside a batch
        if "99" in entry.kinds:  # a return, its events made from its addenda
            if not entry.events:
                self._skip(entry, "returns of ")
            return
        if "98" in entry.kinds:
            self.tally.skip("notifications of change (addenda 98), by transaction code", entry.code)
            return
        if entry.code in RETURN_ENTRIES:
            problem = "expected an addenda 99 (return) or 98 (notification of change) after a "
            raise self._fail(entry.line, problem + f"return entry (transaction code {entry.code})")
        if self.batch.mapped and entry.code in DEBIT_ENTRIES and entry.amount > 0:
            event_id = f"{PREFIX}{self.key}:{entry.trace}"
            self._emit(entry.line, event_id, entry.trace, SUBMITTED, self.at, entry, None,
                       entry.fields)  # fmt: skip
        else:
            self._skip(entry, "")

    def _skip(self, entry: _Entry, what: str) -> None:
        """Count an entry that makes no event, by why it is no debit collection."""
        assert self.batch is not None  # entries are only read inside a batch
        if not self.batch.mapped:
            sec = self.batch.fields["sec_code"]
            return self.tally.skip(f"{what}entries of {sec} batches (another layout)", sec)
        if entry.code[1] in "1234":
            why = "credits"
        elif entry.code in NO_MONEY or entry.amount == 0:
            why = "prenotes and zero-dollar entries"
        else:
            why = "debits to other than a checking or savings account (27, 37)"
        self.tally.skip(f"{what}{why}, by transaction code", entry.code)

    def _return(self, line: int, text: str, entry: _Entry) -> None:
        code = text[3:6]
        if code not in RETURN_TYPES and code not in CONTESTED_CODES:
            problem = f"return reason code (columns 4-6): expected R01 to R85, got {code!r}"
            raise self._fail(line, problem)
        original = self._digits(line, text, 6, 21, "original entry trace number")
        step = stage(code)
        data = {"entry_trace": entry.trace, **entry.fields, "original_dfi": text[27:35].strip()}
        if step == "return":
            type_ = RETURN_TYPES[code]
            data["addenda_information"] = text[35:79].strip()
        else:
            returned = self._returned_code(line, text)
            data.update(return_trace=text[38:53].strip(), return_reason=returned)
            if step == "dishonored":
                # The debit stands: a dishonored reversal is reinstated (P3b); a dishonored
                # failure-type return leaves the entry collected after all.
                type_ = REINSTATED if RETURN_TYPES[returned] == REVERSED else SUCCEEDED
                data["addenda_information"] = text[58:79].strip()
            else:
                type_ = RETURN_TYPES[returned]
                dishonored = text[76:78]
                data["dishonored_trace"] = text[58:73].strip()
                data["dishonored_reason"] = f"R{dishonored}" if dishonored.isdigit() else ""
        entry.codes.append(code)
        assert self.batch is not None  # an entry is only ever open inside a batch
        if not (self.batch.mapped and entry.debit):
            return
        seen = entry.codes.count(code)
        event_id = f"{PREFIX}{self.key}:{entry.trace}:{code}" + (f"-{seen}" if seen > 1 else "")
        at = self.at + STAGE_DELAY[step]
        self._emit(line, event_id, original, type_, at, entry, code, data)

    def _returned_code(self, line: int, text: str) -> str:
        returned = f"R{text[56:58]}"
        if returned not in RETURN_TYPES or returned in DISHONORED_CODES:
            problem = "return reason code (columns 57-58): expected the digits of the original "
            raise self._fail(line, problem + f"return's code (01 for R01), got {text[56:58]!r}")
        return returned

    def _emit(
        self,
        line: int,
        event_id: str,
        debit_id: str,
        type_: str,
        at: datetime,
        entry: _Entry,
        reason: str | None,
        data: dict[str, str],
    ) -> None:
        event = event_record(
            event_id=event_id,
            debit_id=debit_id,
            type=type_,
            occurred_at=at,
            source=SOURCE,
            amount=entry.amount,
            currency=CURRENCY,
            reason=reason,
            data={key: value for key, value in data.items() if value},
        )
        self.records.append((f"{self.path}:{line}", event))
        entry.events += 1

    def _batch_control(self, line: int, text: str) -> None:
        batch = self._open_batch(line, "a batch control record")
        self.batch = None
        number = self._digits(line, text, 87, 94, "batch number")
        if number != batch.number:
            problem = f"batch number: expected {batch.number} (the batch header at line "
            raise self._fail(line, problem + f"{batch.line}), got {number}")
        checks = [("entry/addenda count", 4, 10, batch.count)]
        if not batch.advice:  # advices write amounts in another layout
            checks += [("total debit amount", 20, 32, batch.debits),
                       ("total credit amount", 32, 44, batch.credits)]  # fmt: skip
        self._agree(line, text, checks, f"batch at line {batch.line}")
        self.batches += 1
        self.count += batch.count
        self.debits += batch.debits
        self.credits += batch.credits

    def _file_control(self, line: int, text: str) -> None:
        if self.batch is not None:
            problem = f"expected the batch control (type 8) of the batch at line {self.batch.line}"
            raise self._fail(line, f"{problem} before the file control")
        checks = [("batch count", 1, 7, self.batches), ("entry/addenda count", 13, 21, self.count)]
        if not self.advice:
            checks += [("total debit amount", 31, 43, self.debits),
                       ("total credit amount", 43, 55, self.credits)]  # fmt: skip
        self._agree(line, text, checks, "file")

    def _agree(
        self, line: int, text: str, checks: list[tuple[str, int, int, int]], holder: str
    ) -> None:
        for name, start, end, counted in checks:
            written = int(self._digits(line, text, start, end, name))
            if written != counted:
                problem = f"{name}: the record says {written}, the {holder} holds {counted}"
                raise self._fail(line, f"{problem} (a missing, extra or altered record?)")

    def _padding(self, lines: Iterator[tuple[int, str]]) -> None:
        for number, text in lines:
            if text != PADDING:
                problem = "expected only padding (94 nines) after the file control record, got "
                raise self._fail(number, problem + _glimpse(text))


def _lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines as ``(line, text)``, blank lines at the end dropped; a file without line
    breaks is cut into 94-character records."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(path, None, f"cannot be read ({exc.strerror})") from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")  # the scheme is ASCII; a stray byte is shown, not fatal
    lines = [line.removesuffix("\r") for line in content.split("\n")]
    if len(lines) == 1 and len(lines[0]) > WIDTH and len(lines[0]) % WIDTH == 0:
        lines = [lines[0][i : i + WIDTH] for i in range(0, len(lines[0]), WIDTH)]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ImportFailed(path, "line 1", f"expected {_HEADER}, got an empty file")
    return list(enumerate(lines, 1))


def _glimpse(text: str) -> str:
    head = text.lstrip()[:1]
    if head == "<":
        return "markup (an XML file?)"
    if head in ("{", "["):
        return "JSON"
    return f"a record starting {text[:12].rstrip()!r}"
