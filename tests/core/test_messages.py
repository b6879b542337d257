"""N10: a notice rendered for its customer: money and dates in their locale and time zone,
corrections that say what was wrong, and senders that take messages by template id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.numbers import get_currency_precision, list_currencies
from hypothesis import given
from hypothesis import strategies as st
from support import T0, clocked_engine, ev

from statemachine import (
    Customer,
    DeliveryError,
    Engine,
    Message,
    MessageSender,
    Notice,
    RecordingSender,
)
from statemachine.messages import Words, mask, money

SHANGHAI = {
    "locale": "zh-CN",
    "time_zone": "Asia/Shanghai",
    "loan_ref": "CL-2026-0042",
    "contact": {"sms": "+8613800001234", "push": "device-token-abcdef"},
}
LATE_EVENING_UTC = 8 * 60 + 30  # minutes after T0 (10:00 UTC): 18:30 UTC, 02:30 in Shanghai


def customer_created(customer: dict[str, Any] | None = None, **extra: Any) -> Any:
    data = {"customer": customer} if customer is not None else {}
    return ev("created", 0, currency="CNY", data=data, **extra)


def notice(kind: str, outcome: str | None = None, attempt: int = 1) -> Notice:
    return Notice(f"d-1#{attempt}:{kind}", "d-1", attempt, kind, outcome or kind, T0, T0)


class TemplateSms:
    """A provider that sends an approved template by id with parameters."""

    name = "sms"

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None, dict[str, str], str]] = []

    def send(self, notice: Notice) -> None:
        raise DeliveryError("this sender takes rendered messages only")

    def send_message(self, message: Message) -> None:
        self.calls.append(
            (message.recipient, message.template_id, dict(message.params), message.notice_id)
        )


# Rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("succeeded", "您的贷款CL-2026-0042本期还款¥3,560.00已于2026年3月5日扣款成功，感谢您按时还款。"),
        ("failed", "您的贷款CL-2026-0042本期还款¥3,560.00于2026年3月5日扣款失败（第2次扣款），请确保账户余额充足。"),
        ("reversed", "您的贷款CL-2026-0042本期还款¥3,560.00已被银行退回（2026年3月5日），请留意后续扣款安排。"),
    ],
)  # fmt: skip
def test_zh_cn_texts_read_the_amount_as_yuan_and_the_date_in_chinese(kind: str, text: str) -> None:
    message = Words().compose(
        notice(kind, attempt=2 if kind == "failed" else 1),
        Customer.from_data({"customer": SHANGHAI}) or Customer(),
        amount=356000,
        currency="CNY",
        at=T0,
    )
    assert message.text == text
    assert message.locale == "zh-CN"
    assert str(message.template_id).startswith("SMS_")


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("succeeded", "Your payment of CN¥3,560.00 for loan L-9 was collected on March 5, 2026. Thank you."),
        ("failed", "We could not collect your payment of CN¥3,560.00 for loan L-9 on March 5, 2026 (attempt 1). Please make sure your account has enough funds."),
        ("reversed", "Your payment of CN¥3,560.00 for loan L-9 was returned by your bank on March 5, 2026."),
    ],
)  # fmt: skip
def test_en_texts(kind: str, text: str) -> None:
    message = Words().compose(
        notice(kind), Customer(loan_ref="L-9"), amount=356000, currency="CNY", at=T0
    )
    assert (message.text, message.locale, message.template_id) == (text, "en", None)


def test_money_takes_the_currency_digits_from_babel() -> None:
    assert money(356000, "CNY", "zh_CN") == "¥3,560.00"
    assert money(356000, "USD", "en") == "$3,560.00"
    assert money(356000, "JPY", "en") == "¥356,000"
    assert money(356000, "KWD", "en") == "KWD356.000"
    assert money(5, "CNY", "zh_CN") == "¥0.05"
    assert money(356000, None, "en") == "3,560.00"


@pytest.mark.parametrize(
    ("at", "zone", "locale", "day"),
    [
        (datetime(2026, 3, 5, 18, 30, tzinfo=UTC), "Asia/Shanghai", "zh-CN", "2026年3月6日"),
        (datetime(2026, 3, 5, 15, 59, tzinfo=UTC), "Asia/Shanghai", "zh-CN", "2026年3月5日"),
        (datetime(2026, 3, 5, 16, 0, tzinfo=UTC), "Asia/Shanghai", "zh-CN", "2026年3月6日"),
        (datetime(2026, 3, 6, 3, 0, tzinfo=UTC), "America/New_York", "en", "March 5, 2026"),
        (datetime(2026, 3, 6, 3, 0, tzinfo=UTC), "UTC", "en", "March 6, 2026"),
        (datetime(2026, 3, 6, 3, 0, tzinfo=UTC), None, "en", "March 6, 2026"),
        (datetime(2026, 3, 5, 18, 30, tzinfo=UTC), None, "zh-CN", "2026年3月6日"),
        (datetime(2026, 3, 6, 3, 0, tzinfo=UTC), "Mars/Base", "en", "March 6, 2026"),
    ],
)  # fmt: skip
def test_the_date_is_the_customers_across_midnight_utc(
    at: datetime, zone: str | None, locale: str, day: str
) -> None:
    message = Words().compose(
        notice("succeeded"), Customer(locale, zone), amount=1, currency="CNY", at=at
    )
    assert message.params["date"] == day


def test_an_en_gb_customer_gets_the_en_text_with_british_dates() -> None:
    message = Words().compose(
        notice("succeeded"), Customer("en-GB"), amount=100, currency="GBP", at=T0
    )
    assert message.locale == "en"
    assert message.params == {
        "amount": "£1.00",
        "loan_ref": "d-1",
        "date": "5 March 2026",
    }


@pytest.mark.parametrize(
    ("before", "outcome", "text"),
    [
        ("failed", "succeeded", "更正：此前通知您的贷款CL-2026-0042本期还款¥3,560.00扣款失败有误，实际为扣款成功（2026年3月5日）。给您带来不便，敬请谅解。"),
        ("succeeded", "failed", "更正：此前通知您的贷款CL-2026-0042本期还款¥3,560.00扣款成功有误，实际为扣款失败（2026年3月5日）。给您带来不便，敬请谅解。"),
        ("reversed", "succeeded", "更正：此前通知您的贷款CL-2026-0042本期还款¥3,560.00已被银行退回有误，实际为扣款成功（2026年3月5日）。给您带来不便，敬请谅解。"),
    ],
)  # fmt: skip
def test_a_correction_names_what_was_said_and_what_is_true(
    before: str, outcome: str, text: str
) -> None:
    customer = Customer.from_data({"customer": SHANGHAI}) or Customer()
    message = Words().compose(
        notice("correction", outcome),
        customer,
        amount=356000,
        currency="CNY",
        at=T0,
        before=before,
    )
    assert message.text == text
    assert message.template_id == "SMS_100004"
    assert (message.params["before"], message.params["after"]) == (
        Words().templates.books["zh-CN"].words[before],
        Words().templates.books["zh-CN"].words[outcome],
    )


def test_a_correction_in_en_from_the_engine_says_before_and_after() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(customer_created({"loan_ref": "L-7"}))
    engine.apply(ev("failed", 1))
    clock.advance_to(T0 + timedelta(minutes=20))
    engine.dispatch_due([sms])
    engine.apply(ev("succeeded", 30, source="settlement"))
    engine.dispatch_due([sms])
    assert [m.kind for m in sms.messages] == ["failed", "correction"]
    assert sms.messages[-1].text == (
        "Correction: we told you that your payment of CN¥3,560.00 for loan L-7 could not be "
        "collected. That was wrong: it was collected (March 5, 2026). We are sorry for the "
        "confusion."
    )
    assert [n.notice_id for n in sms.sent] == [m.notice_id for m in sms.messages]


# Amounts of every currency --------------------------------------------------------------------

CURRENCIES = sorted(list_currencies())


@given(
    amount=st.integers(min_value=0, max_value=2**63 - 1),
    currency=st.sampled_from(CURRENCIES),
    locale=st.sampled_from(["en", "zh-CN"]),
)
def test_any_amount_in_any_currency_renders_and_keeps_its_digits(
    amount: int, currency: str, locale: str
) -> None:
    text = (
        Words()
        .compose(notice("succeeded"), Customer(locale), amount=amount, currency=currency, at=T0)
        .params["amount"]
    )
    digits = re.sub(r"[^0-9]", "", text.replace(currency, ""))
    assert int(digits) == amount, (amount, currency, text)
    assert len(digits) >= get_currency_precision(currency)


# Where the customer comes from ----------------------------------------------------------------


def test_the_created_event_says_who_the_customer_is() -> None:
    engine, _ = clocked_engine()
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", LATE_EVENING_UTC))
    message = engine.message(engine.notices()[0])
    assert message.text == (
        "您的贷款CL-2026-0042本期还款¥3,560.00已于2026年3月6日扣款成功，感谢您按时还款。"
    )
    assert message.contact == SHANGHAI["contact"]


def test_a_resolver_the_service_passes_in_wins_over_the_event() -> None:
    asked: list[str] = []

    def customers(debit_id: str) -> Customer | None:
        asked.append(debit_id)
        return Customer("en", "America/New_York", "AUTO-1", {"sms": "+15555550100"})

    engine = Engine.in_memory(customers=customers)
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", LATE_EVENING_UTC))
    message = engine.message(engine.notices()[0])
    assert message.text.startswith("Your payment of CN¥3,560.00 for loan AUTO-1 was collected")
    assert message.params["date"] == "March 5, 2026"
    assert asked == ["d-1"]


def test_a_resolver_answering_none_leaves_it_to_the_event() -> None:
    engine = Engine.in_memory(customers=lambda debit_id: None)
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", 1))
    assert engine.message(engine.notices()[0]).locale == "zh-CN"


@pytest.mark.parametrize(
    "customer",
    [
        {"locale": 7, "time_zone": "Mars/Base", "loan_ref": "", "contact": "+86"},
        {"locale": "tlh", "time_zone": ["UTC"], "contact": {"sms": 5}},
        "not an object",
    ],
)
def test_unusable_customer_data_falls_back_to_the_defaults(customer: Any) -> None:
    engine = Engine.in_memory()
    engine.apply(ev("created", 0, currency="CNY", data={"customer": customer}))
    engine.apply(ev("succeeded", LATE_EVENING_UTC))
    message = engine.message(engine.notices()[0])
    assert message.text == (
        "Your payment of CN¥3,560.00 for loan d-1 was collected on March 5, 2026. Thank you."
    )
    assert message.contact == {}


def test_a_debit_without_a_created_event_is_told_the_amount_due() -> None:
    engine = Engine.in_memory()
    engine.apply(ev("succeeded", 1))
    assert engine.message(engine.notices()[0]).params["amount"] == "the amount due"


# Senders ----------------------------------------------------------------------------------------


def test_dispatch_hands_a_sender_with_send_message_the_rendered_message() -> None:
    engine, _ = clocked_engine()
    sms = TemplateSms()
    assert isinstance(sms, MessageSender)
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", LATE_EVENING_UTC))
    (sent,) = engine.dispatch_due([sms])
    assert (sent.status, sent.channel) == ("sent", "sms")
    assert sms.calls == [
        (
            "+8613800001234",
            "SMS_100001",
            {"loan_ref": "CL-2026-0042", "amount": "¥3,560.00", "date": "2026年3月6日"},
            "d-1#1:succeeded",
        )
    ]


def test_a_sender_with_only_send_still_gets_the_notice() -> None:
    class Plain:
        name = "push"

        def __init__(self) -> None:
            self.notices: list[Notice] = []

        def send(self, notice: Notice) -> None:
            self.notices.append(notice)

    engine, _ = clocked_engine()
    push = Plain()
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", 1))
    engine.dispatch_due([push])
    assert [n.notice_id for n in push.notices] == ["d-1#1:succeeded"]


def test_a_recording_sender_refuses_messages_as_it_refuses_notices() -> None:
    engine, _ = clocked_engine()
    sms, push = RecordingSender("sms", fail=1), RecordingSender("push")
    engine.apply(customer_created(SHANGHAI))
    engine.apply(ev("succeeded", 1))
    (sent,) = engine.dispatch_due([sms, push])
    assert sent.channel == "push"
    assert [n.notice_id for n in sms.refused] == ["d-1#1:succeeded"]
    assert (sms.messages, [m.channel for m in push.messages]) == ([], ["push"])
    assert push.messages[0].recipient == "device-token-abcdef"
    assert "simulated outage" in (sent.last_error or "")


# Personal data ----------------------------------------------------------------------------------


def test_contact_details_are_masked_in_reprs() -> None:
    customer = Customer.from_data({"customer": SHANGHAI})
    assert customer is not None
    message = Words().compose(notice("succeeded"), customer, amount=1, currency="CNY", at=T0)
    shown = repr(message.to("sms")) + repr(customer)
    assert "+8613800001234" not in shown
    assert "device-token-abcdef" not in shown
    assert "recipient='+86******1234'" in shown
    assert "'push': 'dev******cdef'" in shown
    assert message.to("sms").recipient == "+8613800001234"  # the sender still gets it
    assert message.to("email").recipient is None


@pytest.mark.parametrize(
    ("contact", "shown"),
    [("+8613800001234", "+86******1234"), ("13800001234", "138******1234"), ("12345", "******"),
     ("1234567", "******67"), ("", "******")],
)  # fmt: skip
def test_mask_keeps_no_more_than_a_start_and_the_last_four(contact: str, shown: str) -> None:
    assert mask(contact) == shown
