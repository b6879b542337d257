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
)
from .events import Event
from .operations import Metrics
from .precedence import Verdict
from .records import Debit, Notice, NoticeStatus, Result, StoredEvent
from .spec import Spec

__all__ = [
    "CountingSender",
    "Debit",
    "DeliveryDeferred",
    "DeliveryError",
    "DeliveryRefused",
    "Engine",
    "Event",
    "InvalidDefinition",
    "InvalidEvent",
    "ManualClock",
    "Metrics",
    "Notice",
    "NoticeStatus",
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
    "Verdict",
    "utc_now",
]
