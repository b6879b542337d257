"""ISO 20022 messages imported as events, proved by replaying them through the engine."""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import debit_of, replayed

from statemachine.importers import ImportFailed, ImportOptions, read, write_jsonl

FOLDER = "iso20022_moov-io_iso20022"
CHDD = "MsgId-CHDD-Musterfile/PmtInfId-CHDD-1/E2EId-CHDD-"
NS = "urn:iso:std:iso:20022:tech:xsd"


def pain008(*txs: tuple[str, str, str], msg: str = "M1", at: str = "2026-03-01T09:00:00Z") -> str:
    """One payment information P1 with transactions (EndToEndId, currency, amount)."""
    body = "".join(
        f"<DrctDbtTxInf><PmtId><EndToEndId>{e2e}</EndToEndId></PmtId>"
        f'<InstdAmt Ccy="{ccy}">{amount}</InstdAmt></DrctDbtTxInf>'
        for e2e, ccy, amount in txs
    )
    return (
        f'<Document xmlns="{NS}:pain.008.001.02"><CstmrDrctDbtInitn><GrpHdr><MsgId>{msg}</MsgId>'
        f"<CreDtTm>{at}</CreDtTm></GrpHdr><PmtInf><PmtInfId>P1</PmtInfId>{body}</PmtInf>"
        "</CstmrDrctDbtInitn></Document>"
    )


def pain002(status: str, *txs: tuple[str, str, str | None], reason: str | None = None) -> str:
    """A report on M1/P1: PmtInfSts ``status`` and transactions (EndToEndId, TxSts, reason)."""

    def why(code: str | None) -> str:
        return f"<StsRsnInf><Rsn><Cd>{code}</Cd></Rsn></StsRsnInf>" if code else ""

    listed = "".join(
        f"<TxInfAndSts><OrgnlEndToEndId>{e2e}</OrgnlEndToEndId><TxSts>{sts}</TxSts>{why(code)}"
        "</TxInfAndSts>"
        for e2e, sts, code in txs
    )
    return (
        f'<Document xmlns="{NS}:pain.002.001.03"><CstmrPmtStsRpt><GrpHdr><MsgId>R1</MsgId>'
        "<CreDtTm>2026-03-02T10:00:00Z</CreDtTm></GrpHdr><OrgnlGrpInfAndSts><OrgnlMsgId>M1"
        "</OrgnlMsgId></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>P1</OrgnlPmtInfId>"
        f"<PmtInfSts>{status}</PmtInfSts>{why(reason)}{listed}</OrgnlPmtInfAndSts>"
        "</CstmrPmtStsRpt></Document>"
    )


def camt054(refs: str, *, booked: str, msg: str, returned: str | None = None) -> str:
    """One booked direct-debit entry with one transaction; ``returned`` is a return reason."""
    back = f"<RtrInf><Rsn><Cd>{returned}</Cd></Rsn></RtrInf>" if returned else ""
    return (
        f'<Document xmlns="{NS}:camt.054.001.04"><BkToCstmrDbtCdtNtfctn><GrpHdr>'
        f"<MsgId>{msg}</MsgId><CreDtTm>2026-03-09T00:00:00Z</CreDtTm></GrpHdr><Ntfctn><Ntry>"
        f"<Sts>BOOK</Sts><BookgDt><Dt>{booked}</Dt></BookgDt><BkTxCd><Domn><Cd>PMNT</Cd><Fmly>"
        "<Cd>IDDT</Cd><SubFmlyCd>ESDD</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls>"
        f'<Refs>{refs}</Refs><Amt Ccy="EUR">1.00</Amt>{back}</TxDtls></NtryDtls></Ntry></Ntfctn>'
        "</BkToCstmrDbtCdtNtfctn></Document>"
    )


def files(folder: Path, *texts: str) -> list[Path]:
    paths = [folder / f"{number}.xml" for number in range(len(texts))]
    for path, text in zip(paths, texts, strict=True):
        path.write_text(text, encoding="utf-8")
    return paths


def test_swiss_chdd_chain_ends_succeeded_whatever_the_argument_order(realdata: Path) -> None:
    folder = realdata / FOLDER
    paths = [
        next(folder.glob("200519_camt054-chdd_*.xml")),
        next(folder.glob("pain002-chdd-cor1_*.xml")),
        folder / "pain008-musterfile.xml",
    ]
    records = list(read("iso20022", paths))
    replay = replayed(records)
    for number, amount in (("1", 150), ("2", 300)):
        debit_id = CHDD + number
        mine = [event for _, event in records if event["debit_id"] == debit_id]
        assert [(e["type"], e["source"]) for e in mine] == [
            ("created", "internal"),
            ("submitted", "gateway"),
            ("succeeded", "settlement"),
        ]
        assert (mine[0]["amount"], mine[0]["currency"]) == (amount, "CHF")
        assert mine[1]["data"]["PmtInfSts"] == "ACCP"
        assert debit_of(replay.engine, debit_id).state == "succeeded"
        assert {str(e.verdict) for e in replay.engine.history(debit_id)} == {"applied"}
    assert records[0][0] == f"{paths[2]}:/Document/CstmrDrctDbtInitn/PmtInf[1]/DrctDbtTxInf[1]"


def test_finnish_reversal_entry_yields_failed_events_with_return_reasons(realdata: Path) -> None:
    records = list(read("iso20022", [realdata / FOLDER / "FI_camt_054_sample.xml.xml"]))
    reversal = [(o, e) for o, e in records if e["data"].get("RvslInd")]
    assert [(e["type"], e["reason"], e["amount"]) for _, e in reversal] == [
        ("failed", "AC01", 4000),
        ("failed", "CUST", 6000),
    ]
    assert reversal[1][0].endswith("/Ntfctn[1]/Ntry[6]/NtryDtls[1]/TxDtls[2]")
    # Only the direct-debit entries: the booked batch of two, then the two failures.
    assert [e["type"] for _, e in records] == ["succeeded", "succeeded", "failed", "failed"]
    replay = replayed(records)
    assert debit_of(replay.engine, reversal[0][1]["debit_id"]).state == "failed"


def test_swiss_rejections_import_as_failed_with_their_reason(realdata: Path) -> None:
    paths = sorted((realdata / FOLDER).glob("pain002-epo_*.xml"))
    records = list(read("iso20022", paths))
    assert [(e["type"], e["reason"], e["data"]["TxSts"]) for _, e in records] == [
        ("failed", "AC01", "RJCT")
    ] * 2
    replay = replayed(records)
    assert {debit_of(replay.engine, e["debit_id"]).state for _, e in records} == {"failed"}


def test_every_real_message_imports_and_a_return_joins_the_reported_transfer(
    realdata: Path,
) -> None:
    paths = [p for p in (realdata / FOLDER).glob("*.xml") if "camt_053" not in p.name]
    records = list(read("iso20022", paths))
    engine = replayed(records).engine
    states = [debit_of(engine, d).state for d in sorted({e["debit_id"] for _, e in records})]
    assert sorted(states) == ["failed"] * 5 + ["succeeded"] * 4
    # The 2020 return names no MsgId: the rejection report's transaction supplies it.
    joined = [
        e for _, e in records if e["debit_id"] == "MsgId-001/PmtInfId-001-03/EndToEndId-001-03-04"
    ]
    assert [(e["source"], e["reason"]) for e in joined] == [
        ("gateway", "AC01"),
        ("settlement", "AC01"),
    ]


def test_camt053_statement_is_refused_as_another_message(realdata: Path) -> None:
    path = realdata / FOLDER / "FI_camt_053_sample.xml.xml"
    with pytest.raises(ImportFailed, match=r"got camt\.053 \(<BkToCstmrStmt>\)") as failed:
        list(read("iso20022", [path]))
    assert (failed.value.path, failed.value.where) == (str(path), "/Document/BkToCstmrStmt")


def test_partial_report_lets_each_transaction_decide(tmp_path: Path) -> None:
    instruction = pain008(("E1", "EUR", "10"), ("E2", "EUR", "20"), ("E3", "EUR", "30"))
    report = pain002("PART", ("E1", "ACSC", None), ("E2", "RJCT", "AC01"), reason="NARR")
    records = list(read("iso20022", files(tmp_path, report, instruction)))
    reported = {e["debit_id"]: (e["type"], e["reason"]) for _, e in records[3:]}
    assert reported == {"M1/P1/E1": ("succeeded", None), "M1/P1/E2": ("failed", "AC01")}
    states = replayed(records).engine
    assert [debit_of(states, f"M1/P1/E{n}").state for n in (1, 2, 3)] == [
        "succeeded",
        "failed",
        "pending",
    ]


def test_payment_status_stands_for_its_unlisted_transactions(tmp_path: Path) -> None:
    instruction = pain008(("E1", "EUR", "10"), ("E2", "EUR", "20"))
    report = pain002("RJCT", reason="MS03")
    records = list(read("iso20022", files(tmp_path, instruction, report)))
    failures = [e for _, e in records if e["type"] == "failed"]
    assert [(e["debit_id"], e["reason"]) for e in failures] == [
        ("M1/P1/E1", "MS03"),
        ("M1/P1/E2", "MS03"),
    ]
    assert len({e["event_id"] for e in failures}) == 2


def test_return_after_booking_is_reversed_and_alone_is_failed(tmp_path: Path) -> None:
    # The notification names only the EndToEndId: the join finds it in the pain.008.
    refs = "<EndToEndId>E1</EndToEndId>"
    booked = camt054(refs, booked="2026-03-05", msg="C1")
    returned = camt054(refs, booked="2026-03-20", msg="C2", returned="MD06")
    instruction = pain008(("E1", "EUR", "1"))
    alone = list(read("iso20022", files(tmp_path, returned)))
    assert (alone[0][1]["type"], alone[0][1]["debit_id"]) == ("failed", "//E1")
    records = list(read("iso20022", files(tmp_path, returned, booked, instruction)))
    assert [(e["type"], e["reason"]) for _, e in records] == [
        ("created", None),
        ("reversed", "MD06"),
        ("succeeded", None),
    ]
    replay = replayed(records)
    assert debit_of(replay.engine, "M1/P1/E1").state == "reversed"


def test_reimport_gives_the_same_ids_so_a_second_replay_is_all_duplicates(tmp_path: Path) -> None:
    paths = files(tmp_path, pain008(("E1", "EUR", "1")), pain002("ACCP"))
    first, second = list(read("iso20022", paths)), list(read("iso20022", paths))
    assert first == second
    replay = replayed(first + second)
    verdicts = [str(e.verdict) for e in replay.engine.history("M1/P1/E1")]
    assert verdicts == ["applied", "applied", "duplicate", "duplicate"]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([("EUR", 2), ("JPY", 0), ("KWD", 3)]),
    st.integers(min_value=0, max_value=10**12),
)
def test_amounts_are_minor_units_by_the_currency_exponent(
    tmp_path_factory: pytest.TempPathFactory, currency: tuple[str, int], minor: int
) -> None:
    code, exponent = currency
    text = str(Decimal(minor).scaleb(-exponent))
    paths = files(tmp_path_factory.mktemp("amount"), pain008(("E1", code, text)))
    [(_, event)] = read("iso20022", paths)
    assert (event["amount"], event["currency"]) == (minor, code)


def test_a_time_without_offset_is_read_in_the_chosen_zone(tmp_path: Path) -> None:
    zurich = timezone(timedelta(hours=1))
    paths = files(tmp_path, pain008(("E1", "CHF", "1"), at="2018-03-13T10:09:01"))
    [(_, event)] = read("iso20022", paths, ImportOptions(timezone=zurich))
    assert event["occurred_at"] == "2018-03-13T10:09:01+01:00"


GOOD = pain008(("E1", "EUR", "1.50"))


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (GOOD[:200], "line 1, column", "cut short"),
        ("not xml at all\n", "line 1", "got text that is not XML"),
        ("", "line 1", "got an empty file"),
        ('{"events": []}', "line 1", "got JSON"),
        (GOOD.replace("CstmrDrctDbtInitn", "BkToCstmrStmt"), "/Document/BkToCstmrStmt", "camt.053"),
        ("<log><trace/></log>", "/log", "got <log>"),
        (
            GOOD.replace("<MsgId>M1</MsgId>", ""),
            "/Document/CstmrDrctDbtInitn/GrpHdr/MsgId",
            "MsgId",
        ),
        (
            GOOD.replace("1.50", "1.505"),
            "/Document/CstmrDrctDbtInitn/PmtInf[1]/DrctDbtTxInf[1]/InstdAmt",
            "at most 2 decimals for EUR",
        ),
    ],
)
def test_bad_file_fails_naming_the_place_and_writes_nothing(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    good, bad = files(tmp_path, GOOD, text)
    out = tmp_path / "events.jsonl"
    with pytest.raises(ImportFailed) as failed:
        write_jsonl(read("iso20022", [good, bad]), out)
    assert failed.value.path == str(bad)
    assert (failed.value.where or "").startswith(where)
    assert problem in failed.value.problem
    assert not out.exists()
