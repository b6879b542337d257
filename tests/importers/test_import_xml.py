"""The XML formats (ISO 20022, XES): entities and unreadable encodings are refused, by name."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from statemachine.importers import ImportFailed, read


def pain008(message_id: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"><CstmrDrctDbtInitn>'
        f"<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>2026-03-01T09:00:00Z</CreDtTm></GrpHdr>"
        "<PmtInf><PmtInfId>P1</PmtInfId><DrctDbtTxInf><PmtId><EndToEndId>E1</EndToEndId>"
        '</PmtId><InstdAmt Ccy="EUR">1.00</InstdAmt></DrctDbtTxInf></PmtInf>'
        "</CstmrDrctDbtInitn></Document>\n"
    )


def xes(trace_name: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<log><trace>'
        f'<string key="concept:name" value="{trace_name}"/><string key="AMOUNT_REQ" value="1"/>'
        '<event><string key="concept:name" value="A_SUBMITTED"/>'
        '<date key="time:timestamp" value="2011-10-01T00:00:00Z"/></event></trace></log>\n'
    )


# (format, a document whose one id is the text given, file name)
DOCUMENTS: list[tuple[str, Callable[..., str], str]] = [
    ("iso20022", pain008, "pain008.xml"),
    ("xes", xes, "log.xes"),
    ("xes", xes, "log.xes.gz"),
]
IDS = ["iso20022", "xes", "xes.gz"]
LAUGHS = "\n".join(
    [' <!ENTITY lol0 "lol">']
    + [f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
)


def write(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return path


def check_refused(found: pytest.ExceptionInfo[ImportFailed], path: Path, *parts: str) -> None:
    message = str(found.value)
    assert message.startswith(f"{path}: line ")
    for part in parts:
        assert part in message


@pytest.mark.parametrize(("format", "document", "name"), DOCUMENTS, ids=IDS)
def test_both_documents_read_as_written(
    tmp_path: Path, format: str, document: Callable[..., str], name: str
) -> None:
    path = write(tmp_path / name, document("plain"))
    [(_, event)] = read(format, [path])
    assert "plain" in event["debit_id"]


@pytest.mark.parametrize(("format", "document", "name"), DOCUMENTS, ids=IDS)
def test_entity_expansion_is_refused_before_anything_expands(
    tmp_path: Path, format: str, document: Callable[..., str], name: str
) -> None:
    path = write(tmp_path / name, document("&lol9;", f"<!DOCTYPE lolz [\n{LAUGHS}\n]>\n"))
    with pytest.raises(ImportFailed) as refused:
        list(read(format, [path]))
    check_refused(refused, path, "line 3:", "without entity declarations", "<!ENTITY lol0 ...>")


@pytest.mark.parametrize(("format", "document", "name"), DOCUMENTS, ids=IDS)
def test_an_external_entity_is_refused_and_its_file_never_read(
    tmp_path: Path, format: str, document: Callable[..., str], name: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    prolog = f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
    path = write(tmp_path / name, document("&xxe;", prolog))
    with pytest.raises(ImportFailed) as refused:
        list(read(format, [path]))
    check_refused(refused, path, "line 2:", f'<!ENTITY xxe SYSTEM "{secret.as_uri()}" ...>')
    assert "TOP-SECRET" not in str(refused.value)


@pytest.mark.parametrize(("format", "document", "name"), DOCUMENTS, ids=IDS)
@pytest.mark.parametrize(
    ("encoding", "why"),
    [("UTF-3", "unknown encoding"), ("Shift_JIS", "multi-byte"), ("rot13", "not a text encoding")],
    ids=["unknown", "multi-byte", "not-text"],
)
def test_an_encoding_the_parser_cannot_read_is_refused_by_name(
    tmp_path: Path,
    format: str,
    document: Callable[..., str],
    name: str,
    encoding: str,
    why: str,
) -> None:
    text = document("1").replace('encoding="UTF-8"', f'encoding="{encoding}"')
    path = write(tmp_path / name, text)
    with pytest.raises(ImportFailed) as refused:
        list(read(format, [path]))
    check_refused(refused, path, "line 1: XML declaration: expected", f"encoding='{encoding}'", why)
