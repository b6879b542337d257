"""Words (N10): a notice rendered for its customer as a :class:`Message`.

The text comes from the customer's locale's template (``templates.py``), filled in with the
amount as money for the locale (Babel), the loan reference, the date of the debit's outcome in
the customer's time zone, the attempt, and for a correction what the customer was told before
and what is true now.

Who the customer is comes from a resolver the embedding service passes to the engine, else
from the ``created`` event's ``data.customer``::

    {"customer": {"locale": "zh-CN", "time_zone": "Asia/Shanghai", "loan_ref": "loan-42",
                  "contact": {"sms": "+8613800001234", "push": "device-token"}}}

Every key is optional; a missing or unusable one falls back to the templates' defaults (the
default locale's file, that file's ``time_zone``, the debit id as the loan reference).

>>> from statemachine.records import Notice
>>> from datetime import UTC, datetime
>>> at = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)
>>> notice = Notice("loan-42/2026-03#1:succeeded", "loan-42/2026-03", 1, "succeeded",
...                 "succeeded", at, at)
>>> customer = Customer(locale="zh-CN", loan_ref="loan-42")
>>> Words().compose(notice, customer, amount=356000, currency="CNY", at=at).text
'您的贷款loan-42本期还款¥3,560.00已于2026年3月6日扣款成功，感谢您按时还款。'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import attrs
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, get_currency_precision

from .events import CREATED, FAILED, REVERSED, SUCCEEDED
from .notices import last_told
from .records import CORRECTION, DebitRecord, Notice
from .spec import Spec
from .templates import Phrasebook, Templates, babel_locale, zone_info

if TYPE_CHECKING:
    from .dispatch import Sender


def mask(contact: str) -> str:
    """A contact detail as logs and reprs may show it: its start and its last four.

    >>> mask("+8613800001234"), mask("abc")
    ('+86******1234', '******')
    """
    if len(contact) >= 10:
        return f"{contact[:3]}******{contact[-4:]}"
    return "******" + (contact[-2:] if len(contact) >= 6 else "")


def _masked(value: str | None) -> str:
    return "None" if value is None else repr(mask(value))


def _masked_contact(contact: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{channel!r}: {mask(c)!r}" for channel, c in contact.items()) + "}"


@attrs.frozen
class Customer:
    """Who a notice is for: locale (``zh-CN``), IANA time zone, loan reference, and a
    contact per channel name (``{"sms": "+86...", "push": "device-token"}``). Any may be
    None (empty): the templates' defaults apply."""

    locale: str | None = None
    time_zone: str | None = None
    loan_ref: str | None = None
    contact: Mapping[str, str] = attrs.field(factory=dict, hash=False, repr=_masked_contact)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Customer | None:
        """The customer in an event's ``data`` (its ``customer`` object), if it names one.
        Values of the wrong type are left out, so that a bad field falls back to a default
        rather than stopping the notice."""
        raw = data.get("customer")
        if not isinstance(raw, Mapping):
            return None

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) and value else None

        contact = raw.get("contact")
        channels = contact.items() if isinstance(contact, Mapping) else ()
        return cls(
            text("locale"),
            text("time_zone"),
            text("loan_ref"),
            {str(k): v for k, v in channels if isinstance(v, str) and v},
        )


CustomerResolver = Callable[[str], Customer | None]
"""Given a debit id, the customer to tell (None: use the ``created`` event's data)."""


@attrs.frozen
class Message:
    """One notice rendered for its customer: what a provider sends.

    ``text`` is the message in ``locale``; ``template_id`` and ``params`` are for providers
    that send an approved template by id with parameters (every value a string). ``contact``
    holds the customer's address per channel and ``recipient`` the one for ``channel``, the
    sender it was handed to. Contact details are personal data: the repr masks them.
    ``notice_id`` is the idempotency key, as for the notice.
    """

    notice_id: str
    debit_id: str
    attempt: int
    kind: str
    outcome: str
    locale: str
    text: str
    template_id: str | None = None
    params: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    contact: Mapping[str, str] = attrs.field(factory=dict, hash=False, repr=_masked_contact)
    channel: str | None = None
    recipient: str | None = attrs.field(default=None, repr=_masked)
    notice: Notice | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def idempotency_key(self) -> str:
        """The key a provider must deduplicate by: the notice id."""
        return self.notice_id

    def to(self, channel: str) -> Message:
        """This message as handed to ``channel``: ``recipient`` is the contact for it."""
        return attrs.evolve(self, channel=channel, recipient=self.contact.get(channel))


@runtime_checkable
class MessageSender(Protocol):
    """A :class:`~statemachine.dispatch.Sender` that also takes rendered messages: the
    dispatcher calls ``send_message`` instead of ``send`` on a sender that has it."""

    name: str

    def send(self, notice: Notice) -> None:
        """Deliver a notice without its rendered text (callers that have no message)."""
        ...

    def send_message(self, message: Message) -> None:
        """Deliver ``message``; return once the channel accepted it, raise if it did not."""
        ...


class Words:
    """Renders notices into messages for their customers, and hands senders what they take.

    ``customers`` is an optional resolver (debit id to :class:`Customer`); without it, or
    when it returns None, the ``created`` event's ``data.customer`` says who the customer is.
    """

    def __init__(
        self,
        templates: Templates | None = None,
        spec: Spec | None = None,
        customers: CustomerResolver | None = None,
    ) -> None:
        self._templates = templates
        self.spec = spec or Spec.default()
        self.customers = customers
        # A spec may call its states what it likes: templates are named by the event types.
        self._kinds = {self.spec.state_after(t): t for t in (SUCCEEDED, FAILED, REVERSED)}

    @property
    def templates(self) -> Templates:
        """The templates in use: the bundled ones unless others were given."""
        if self._templates is None:
            self._templates = Templates.default()
        return self._templates

    def send(self, sender: Sender, notice: Notice, record: DebitRecord | None) -> None:
        """Hand ``notice`` to ``sender``: rendered, as ``send_message(message)``, when the
        sender has that method, else as ``send(notice)``."""
        send_message = getattr(sender, "send_message", None)
        if send_message is None:
            sender.send(notice)
        else:
            send_message(self.render(notice, record).to(sender.name))

    def customer(self, record: DebitRecord | None, debit_id: str) -> Customer:
        """Who to tell about a debit: the resolver's answer, else the ``created`` event's."""
        found = self.customers(debit_id) if self.customers is not None else None
        if found is None and record is not None:
            created = next((e for e in record.facts if e.type == CREATED), None)
            found = Customer.from_data(created.data) if created is not None else None
        return found or Customer()

    def render(self, notice: Notice, record: DebitRecord | None) -> Message:
        """The message for ``notice``, from its debit's record: the amount, the customer,
        the outcome's date (its latest report) and what the customer was told before."""
        at, before = notice.created_at, None
        amount, currency = (record.amount, record.currency) if record else (None, None)
        if record is not None:
            dates = [
                e.occurred_at
                for e in record.facts
                if e.attempt == notice.attempt and self.spec.state_after(e.type) == notice.outcome
            ]
            at = max(dates, default=at)
            told = last_told(
                n
                for n in record.notices.values()
                if n.notice_id != notice.notice_id
                and (
                    notice.sent_at is None
                    or (n.sent_at is not None and n.sent_at <= notice.sent_at)
                )
            )
            before = told.outcome if told is not None else None
        customer = self.customer(record, notice.debit_id)
        return self.compose(
            notice, customer, amount=amount, currency=currency, at=at, before=before
        )

    def compose(
        self,
        notice: Notice,
        customer: Customer,
        *,
        amount: int | None,
        currency: str | None,
        at: datetime,
        before: str | None = None,
    ) -> Message:
        """Render ``notice`` for ``customer``: ``amount`` in minor units of ``currency``, ``at``
        the outcome's time, ``before`` the outcome they were told last (for a correction)."""
        book = self.templates.phrasebook(customer.locale)
        kind = CORRECTION if notice.kind == CORRECTION else self._kinds.get(notice.kind)
        if kind is None:  # an outcome the templates have no words for: say it plainly
            return Message(notice.notice_id, notice.debit_id, notice.attempt, notice.kind,
                           notice.outcome, book.locale, notice.text(), contact=customer.contact,
                           notice=notice)  # fmt: skip
        template = book.templates[kind]
        home = babel_locale(book.locale)
        assert home is not None  # checked when the file was loaded
        # The customer's own locale formats (en-GB dates for an en text), in the text's language.
        wanted = babel_locale(customer.locale or "")
        locale = wanted if wanted is not None and wanted.language == home.language else home
        zone = zone_info(customer.time_zone or "") or zone_info(book.time_zone)
        values = {
            "amount": book.words["no_amount"] if amount is None
            else money(amount, currency, locale),
            "loan_ref": customer.loan_ref or notice.debit_id,
            "date": format_date(_local_date(at, zone), book.date_format, locale=locale),
            "attempt": str(notice.attempt),
            "outcome": self._word(book, notice.outcome),
            "before": self._word(book, before or notice.outcome),
            "after": self._word(book, notice.outcome),
        }  # fmt: skip
        return Message(
            notice.notice_id,
            notice.debit_id,
            notice.attempt,
            notice.kind,
            notice.outcome,
            book.locale,
            template.render(values),
            template.template_id,
            {name: values[name] for name in template.names},
            customer.contact,
            notice=notice,
        )

    def _word(self, book: Phrasebook, outcome: str) -> str:
        kind = self._kinds.get(outcome)
        return book.words[kind] if kind is not None else outcome


def money(minor_units: int, currency: str | None, locale: Locale | str) -> str:
    """An amount in minor units as money for ``locale``: the currency's digits from Babel.

    >>> money(356000, "CNY", "zh_CN"), money(356000, "CNY", "en"), money(5000, "JPY", "en")
    ('¥3,560.00', 'CN¥3,560.00', '¥5,000')
    """
    if currency is None:
        return format_decimal(Decimal(minor_units).scaleb(-2), "#,##0.00", locale=locale)
    digits = get_currency_precision(currency)
    return format_currency(Decimal(minor_units).scaleb(-digits), currency, locale=locale)


def _local_date(at: datetime, zone: ZoneInfo | None) -> date:
    if zone is None:
        return at.date()
    try:
        return at.astimezone(zone).date()
    except OverflowError:  # at the edge of what datetime holds: the date as recorded
        return at.date()
