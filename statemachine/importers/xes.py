"""XES event logs (``.xes``, ``.xes.gz``) read as debit events through a mapping file.

An XES log is process-mining XML: a ``<log>`` holds ``<trace>`` elements (one case each, read
as one debit) that hold ``<event>`` elements with typed attributes such as ``concept:name``
(the activity), ``lifecycle:transition`` and ``time:timestamp``. A small TOML mapping
(:class:`LogMapping`) says which trace attributes give the debit id and the amount and which
activities are which event types; any other activity is skipped. The log is read as a stream,
one trace in memory at a time. The bundled mapping reads the BPI Challenge 2012 loan log:

>>> mapping = LogMapping.load(DEFAULT_MAPPING)
>>> mapping.event_type("A_APPROVED", "COMPLETE"), mapping.event_type("W_Nabellen offertes", "START")
('succeeded', None)
"""

from __future__ import annotations

import gzip
import re
import tomllib
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, cast

import attrs

from ..events import CREATED, FAILED, REVERSED, SUBMITTED, SUCCEEDED
from ..spec import bundled_path
from . import ImportFailed, ImportOptions, ImportTally, Record, _xml
from ._common import aware_time, event_record

DEFAULT_MAPPING = bundled_path("mappings", "bpic2012.toml")
MAPPABLE = (CREATED, SUBMITTED, SUCCEEDED, FAILED, REVERSED)
GZIP_MAGIC = b"\x1f\x8b"
# What expat says of a document that ends too early.
_CUT_SHORT = ("no element found", "unclosed token")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
# A mapped event waiting for its trace's end: (index in trace, type, occurred_at, activity, data).
_Mapped = tuple[int, str, datetime, str, dict[str, str]]
_KEYS = {
    "": ("source", "debit", "amount", "activities"),
    "debit": ("attribute", "prefix"),
    "amount": ("attribute", "scale", "currency", "default"),
}


@attrs.frozen
class LogMapping:
    """A checked mapping file: which trace attributes and activities mean what.

    ``activities`` maps an activity (``concept:name``) or an activity with its lifecycle
    transition (``"A_APPROVED+COMPLETE"``, which wins over the bare name) to an event type.
    """

    source: str
    activities: dict[str, str]
    debit_attribute: str = "concept:name"
    debit_prefix: str = ""
    amount_attribute: str | None = None
    amount_scale: int = 1
    amount_default: int | None = None
    currency: str | None = None

    def event_type(self, activity: str, transition: str | None) -> str | None:
        """The event type an activity maps to, or None when it is skipped."""
        if transition is not None:
            found = self.activities.get(f"{activity}+{transition}")
            if found is not None:
                return found
        return self.activities.get(activity)

    @classmethod
    def load(cls, path: Path) -> LogMapping:
        """Read and check a mapping file; a bad one raises :class:`ImportFailed` naming the key."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ImportFailed(
                path, None, f"cannot read the mapping file ({exc.strerror})"
            ) from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ImportFailed(path, None, f"expected a TOML mapping file: {exc}") from None
        return _checked(data, path)


def read(paths: Sequence[Path], options: ImportOptions, tally: ImportTally) -> Iterator[Record]:
    """Events of every trace of every log, in file order; the mapping is checked first."""
    mapping = LogMapping.load(options.mapping or DEFAULT_MAPPING)
    tally.unit = ("event", "events")
    return _read_all(paths, mapping, options.timezone, tally)


def _read_all(
    paths: Sequence[Path], mapping: LogMapping, zone: tzinfo, tally: ImportTally
) -> Iterator[Record]:
    for path in paths:
        yield from _LogReader(path, mapping, zone, tally).records()


class _LogReader:
    """One log file; remembers where it is so that an error can name the element."""

    def __init__(self, path: Path, mapping: LogMapping, zone: tzinfo, tally: ImportTally) -> None:
        self.path, self.name, self.mapping, self.zone = path, str(path), mapping, zone
        self.tally = tally
        self.trace = self.event = 0  # 1-based positions of the current (or last) trace and event
        self.in_trace = self.in_event = self.started = False

    def where(self) -> str:
        if self.in_event:
            return f"/log/trace[{self.trace}]/event[{self.event}]"
        return f"/log/trace[{self.trace}]" if self.in_trace else "/log"

    def fail(self, problem: str, where: str | None = None) -> ImportFailed:
        return ImportFailed(self.name, where or self.where(), problem)

    def records(self) -> Iterator[Record]:
        try:
            with _open(self.path) as stream:
                yield from self._parse(stream)
        except ET.ParseError as exc:
            line, column = exc.position
            problem = str(exc).rsplit(": line ", 1)[0]
            if not self.started:
                raise self.fail(
                    f"expected an XES log (XML with a <log> root): {problem}",
                    f"line {line}, column {column}",
                ) from None
            place = f"line {line}, column {column}, in {self.where()}"
            cut = " (is the file cut short?)" if problem in _CUT_SHORT else ""
            raise self.fail(f"expected well-formed XES{cut}: {problem}", place) from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            where = self.where() if self.started else None
            problem = f"expected complete gzip data (is the file cut short?): {exc}"
            raise ImportFailed(self.name, where, problem) from None
        except OSError as exc:
            raise ImportFailed(self.name, None, f"cannot read the file ({exc.strerror})") from None

    def _parse(self, stream: IO[bytes]) -> Iterator[Record]:
        parts = _xml.iterparse(stream, ("start", "end"), self.path, "an XES log")
        _, root = next(parts)
        namespace, _, local = root.tag.rpartition("}")
        if local != "log":
            raise self.fail(
                f"expected an XES log (a <log> root element), got <{local}>", f"/{local}"
            )
        self.started = True
        ns = f"{namespace}}}" if namespace else ""  # XES 1.0 files name a namespace, 2.0 may not
        trace_tag, event_tag = f"{ns}trace", f"{ns}event"
        event_of, trace_of = self._event, self._trace
        events: list[_Mapped]
        depth, events = 1, []
        for kind, element in parts:
            if kind == "start":
                depth += 1
                if depth == 2 and element.tag == trace_tag:
                    self.trace, self.event, self.in_trace, events = self.trace + 1, 0, True, []
                elif depth == 3 and self.in_trace and element.tag == event_tag:
                    self.event, self.in_event = self.event + 1, True
                continue
            if depth == 3 and self.in_event:
                found = event_of(element)
                if found is not None:
                    events.append(found)
                element.clear()
                self.in_event = False
            elif depth == 2:
                if self.in_trace:
                    yield from trace_of(element, event_tag, events)
                    self.in_trace = False
                root.clear()  # done with this child of <log>: keeps memory to one trace
            depth -= 1

    def _event(self, element: ET.Element) -> _Mapped | None:
        """(index, type, occurred_at, activity, data) of a mapped event; None if skipped."""
        values = {child.get("key"): child.get("value") for child in element}
        activity = values.get("concept:name")
        self.tally.read += 1
        if activity is None:
            self.tally.skip("without a concept:name (the activity)")
            return None
        transition = values.get("lifecycle:transition")
        kind = self.mapping.event_type(activity, transition)
        if kind is None:
            self.tally.skip("whose activity is not in the mapping", activity)
            return None
        data = {"activity": activity}
        if transition is not None:
            data["lifecycle"] = transition
        resource = values.get("org:resource")
        if resource is not None:
            data["resource"] = resource
        return self.event, kind, self._time(values.get("time:timestamp")), activity, data

    def _time(self, stamp: str | None) -> datetime:
        if stamp is None:
            raise self.fail("expected a time:timestamp attribute on a mapped event, found none")
        try:
            return aware_time(stamp, self.zone, example="2011-10-01T00:38:44+02:00")
        except ValueError as exc:
            raise self.fail(f"time:timestamp: {exc}") from None

    def _trace(
        self,
        element: ET.Element,
        event_tag: str,
        events: list[_Mapped],
    ) -> Iterator[Record]:
        if not events:
            return
        mapping = self.mapping
        attributes = {c.get("key"): c.get("value") for c in element if c.tag != event_tag}
        name = attributes.get(mapping.debit_attribute)
        if name is None or not name.strip():
            raise self.fail(
                f"expected a trace attribute {mapping.debit_attribute!r} naming the debit, "
                f"found {name!r}"
            )
        debit_id = mapping.debit_prefix + name
        for index, kind, occurred_at, activity, data in events:
            created = kind == CREATED
            event = event_record(
                event_id=f"xes:{debit_id}:{index}",
                debit_id=debit_id,
                type=kind,
                occurred_at=occurred_at,
                source=mapping.source,
                amount=self._amount(attributes) if created else None,
                currency=mapping.currency if created else None,
                reason=activity if kind in (FAILED, REVERSED) else None,
                data={"trace": name, **data},
            )
            yield f"{self.name}:/log/trace[{self.trace}]/event[{index}]", event

    def _amount(self, attributes: dict[str | None, str | None]) -> int:
        key, scale = self.mapping.amount_attribute, self.mapping.amount_scale
        raw = attributes.get(key) if key is not None else None
        if raw is None:
            if self.mapping.amount_default is not None:
                return self.mapping.amount_default
            raise self.fail(f"expected a trace attribute {key!r} (the amount), found none")
        try:
            value = Decimal(raw.strip()) * scale
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or not 0 <= value < 2**63 or value != value.to_integral_value():
            raise self.fail(
                f"{key}: expected an amount >= 0 that is a whole number of minor units once "
                f"multiplied by the scale {scale}, got {raw!r}"
            )
        return int(value)


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as head:
        compressed = head.read(2) == GZIP_MAGIC  # by content: a .xes may be gzipped, or not
    return cast(IO[bytes], gzip.open(path, "rb")) if compressed else path.open("rb")


def _checked(data: dict[str, Any], path: Path) -> LogMapping:
    """A :class:`LogMapping` from parsed TOML, or :class:`ImportFailed` naming the bad key."""

    def fail(key: str, problem: str) -> ImportFailed:
        return ImportFailed(path, f"key {key}", problem)

    tables: dict[str, dict[str, Any]] = {"": data}
    for table in ("debit", "amount"):
        value = data.get(table, {})
        if not isinstance(value, dict):
            raise fail(table, f"expected a table ([{table}]), got {value!r}")
        tables[table] = value
    for table, allowed in _KEYS.items():
        for key in tables[table]:
            if key not in allowed:
                dotted = f"{table}.{key}" if table else key
                raise fail(dotted, f"unknown key: expected one of {', '.join(allowed)}")

    def text(table: str, key: str, example: str, required: bool = False) -> str | None:
        dotted = f"{table}.{key}" if table else key
        value = tables[table].get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else repr(value)
            raise fail(dotted, f"expected {example}, got {got}")
        return value

    source = text("", "source", "a source name such as gateway or settlement", required=True)
    amount = tables["amount"]
    scale, default = amount.get("scale", 1), amount.get("default")
    if type(scale) is not int or scale < 1:
        raise fail("amount.scale", f"expected an integer >= 1 (euros to cents: 100), got {scale!r}")
    if default is not None and (type(default) is not int or default < 0):
        raise fail("amount.default", f"expected an integer of minor units >= 0, got {default!r}")
    attribute = text("amount", "attribute", "a trace attribute key such as AMOUNT_REQ")
    if attribute is not None and "scale" not in amount:
        raise fail("amount.scale", "missing: the factor from the attribute's units to minor units")
    currency = text("amount", "currency", "a three-letter ISO 4217 code such as EUR")
    if currency is not None and not _CURRENCY.match(currency):
        raise fail("amount.currency", f"expected a three-letter code such as EUR, got {currency!r}")
    prefix = tables["debit"].get("prefix", "")
    if not isinstance(prefix, str):
        raise fail("debit.prefix", f"expected a string put before each debit id, got {prefix!r}")

    activities = data.get("activities")
    if not isinstance(activities, dict) or not activities:
        raise fail("activities", f"expected a table of activity = event type, got {activities!r}")
    for activity, kind in activities.items():
        if kind not in MAPPABLE:
            raise fail(
                f'activities."{activity}"',
                f"expected one of {', '.join(MAPPABLE)} (an XES log has no attempt numbers, "
                f"so retried cannot be mapped), got {kind!r}",
            )
        if kind == CREATED and attribute is None and default is None:
            raise fail(
                "amount",
                f"missing: activity {activity!r} maps to created, which needs an amount; "
                "give amount.attribute (with amount.scale) or amount.default",
            )
    assert source is not None  # required above
    return LogMapping(
        source=source,
        activities=dict(activities),
        debit_attribute=text("debit", "attribute", "a trace attribute key") or "concept:name",
        debit_prefix=prefix,
        amount_attribute=attribute,
        amount_scale=scale,
        amount_default=default,
        currency=currency,
    )
