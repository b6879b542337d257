"""A payment state-machine engine: a debit's state is the single source of truth.

>>> from statemachine import Engine, Event
>>> engine = Engine.in_memory()
>>> result = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "loan-42/2026-03",
...     "type": "submitted", "occurred_at": "2026-03-05T09:00:00+08:00", "source": "gateway"}))
>>> result.verdict, result.state
(<Verdict.APPLIED: 'applied'>, 'submitted')
"""

from .clock import ManualClock, utc_now
from .dispatch import CountingSender, RecordingSender, RetryPolicy, Sender
from .engine import Engine
from .errors import (
    DeliveryDeferred,
    DeliveryError,
    DeliveryRefused,
    InvalidDefinition,
    InvalidEvent,
    SpecError,
    StateMachineError,
    StoreBusy,
    StoreError,
    TemplateError,
    TooManyRequests,
)
from .events import Event
from .messages import Customer, Message, MessageSender
from .operations import Metrics
from .precedence import Verdict
from .receipts import Receipt, ReceiptResult, ReceiptStatus, ReceiptVerdict, StoredReceipt
from .records import Debit, Notice, NoticeStatus, Result, StoredEvent
from .spec import Spec
from .templates import Templates

__all__ = [
    "CountingSender",
    "Customer",
    "Debit",
    "DeliveryDeferred",
    "DeliveryError",
    "DeliveryRefused",
    "Engine",
    "Event",
    "InvalidDefinition",
    "InvalidEvent",
    "ManualClock",
    "Message",
    "MessageSender",
    "Metrics",
    "Notice",
    "NoticeStatus",
    "Receipt",
    "ReceiptResult",
    "ReceiptStatus",
    "ReceiptVerdict",
    "RecordingSender",
    "Result",
    "RetryPolicy",
    "Sender",
    "Spec",
    "SpecError",
    "StateMachineError",
    "StoreBusy",
    "StoreError",
    "StoredEvent",
    "StoredReceipt",
    "TemplateError",
    "Templates",
    "TooManyRequests",
    "Verdict",
    "utc_now",
]
