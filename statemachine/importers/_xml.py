"""XML read safely, for the importers of XML formats (ISO 20022, XES).

Entities are declared in a document's prolog, before its root element: that part is read
first by defusedxml's parser, which stops at an entity declaration (``<!ENTITY ...>``) or a
reference to an external entity before anything is expanded or opened. So a "billion laughs"
file cannot blow up and a ``SYSTEM "file:///etc/passwd"`` entity is never read, whatever the
expat library Python was built with; payment messages and event logs need neither. A declared
encoding the parser cannot read (``encoding="UTF-3"``, a multi-byte one) is refused there too.
Each refusal is an :class:`ImportFailed` naming the file and the line. The document itself is
then parsed by the standard (C) parser, which has no declared entity left to expand: an XES
log of millions of elements streams at its full speed. A document that is not well-formed
raises ``xml.etree.ElementTree.ParseError``, for the importer to place.

>>> from pathlib import Path
>>> parse(b"<Document><x>1</x></Document>", Path("m.xml"), "an ISO 20022 message").tag
'Document'
>>> parse(b'<!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>', Path("m.xml"), "an ISO 20022 message")
Traceback (most recent call last):
statemachine.importers.ImportFailed: m.xml: line 1: expected an ISO 20022 message without \
entity declarations, got <!ENTITY e ...> (entities are refused: they can expand without bound \
or read other files)
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, Literal

from defusedxml import EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from . import ImportFailed

CHUNK: Final = 64 * 1024
# A prolog (declarations and comments before the root element) is a few lines in practice.
PROLOG_LIMIT: Final = 1024 * 1024
_DECLARED: Final = re.compile(rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)""")
_ENCODINGS: Final = "UTF-8, UTF-16, ISO-8859-1 or another single-byte encoding"


def parse(raw: bytes, path: Path, kind: str) -> ET.Element:
    """The root element of a whole document (``kind`` names what the file should be)."""
    _checked_prolog(io.BytesIO(raw), path, kind)
    return ET.fromstring(raw)


def iterparse(
    stream: IO[bytes], events: Iterable[Literal["start", "end"]], path: Path, kind: str
) -> Iterator[tuple[str, Any]]:
    """``(event, element)`` pairs of a document read as a stream, as ``ET.iterparse`` gives."""
    head = _checked_prolog(stream, path, kind)
    yield from ET.iterparse(_Rewound(head, stream), events)


class _RootReached(Exception):
    """The prolog is over: the parser met the root element."""


class _Prolog:
    """A parser target that only waits for the root element."""

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        raise _RootReached

    def close(self) -> None:
        return None


def _checked_prolog(stream: IO[bytes], path: Path, kind: str) -> bytes:
    """Read up to the root element with entities refused; returns the bytes read."""
    parser = DefusedXMLParser(target=_Prolog())
    read: list[bytes] = []
    size = 0
    while size <= PROLOG_LIMIT:
        chunk = stream.read(CHUNK)
        read.append(chunk)
        size += len(chunk)
        if not chunk:
            break  # no root element: the document's parse says so, and where
        try:
            parser.feed(chunk)
        except _RootReached:
            break
        except ET.ParseError:
            break  # not well-formed: the document's parse says so, and where
        except (EntitiesForbidden, ExternalReferenceForbidden) as exc:
            raise _entities(exc, parser, path, kind) from None
        except (LookupError, ValueError) as exc:
            # The parser's own errors are ParseError; these come from the declared encoding.
            raise _encoding(exc, read[0], path, kind) from None
    else:
        problem = f"expected {kind}'s root element within the first {PROLOG_LIMIT} bytes"
        raise ImportFailed(path, None, f"{problem}, got more declarations or comments before it")
    return b"".join(read)


class _Rewound(io.RawIOBase):
    """A stream whose first bytes were read already: gives them again, then the rest."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._head:
            return self._rest.read(-1 if size is None else size)
        if size is None or size < 0:
            chunk, self._head = self._head + self._rest.read(), b""
        else:
            chunk, self._head = self._head[:size], self._head[size:]
        return chunk


def _entities(
    exc: EntitiesForbidden | ExternalReferenceForbidden,
    parser: DefusedXMLParser,
    path: Path,
    kind: str,
) -> ImportFailed:
    if isinstance(exc, EntitiesForbidden):
        external = f' SYSTEM "{exc.sysid}"' if exc.sysid else ""
        got = f"<!ENTITY {exc.name}{external} ...>"
    else:
        got = f'a reference to the external entity "{exc.sysid}"'
    problem = (
        f"expected {kind} without entity declarations, got {got} (entities are refused: "
        "they can expand without bound or read other files)"
    )
    return ImportFailed(path, f"line {parser.parser.CurrentLineNumber}", problem)


def _encoding(exc: Exception, head: bytes, path: Path, kind: str) -> ImportFailed:
    found = _DECLARED.match(head)
    declared = found.group(1).decode("latin-1") if found else "an encoding"
    problem = f"XML declaration: expected {kind} in {_ENCODINGS}, got encoding={declared!r} ({exc})"
    return ImportFailed(path, "line 1", problem)
