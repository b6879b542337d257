"""The replay tool: historical logs applied on event time (N5), summarised and reported.

``runner`` holds the two runners over an engine (event by event, batched), ``logs`` reads
JSONL and CSV logs, ``summary`` runs logs through a runner and sums up from the store, and
``report`` draws the summary as one self-contained HTML page.

>>> from statemachine import Engine, ManualClock
>>> summary = replay_records(Replay(Engine.in_memory(clock=ManualClock())), [])
>>> summary.lines
0
"""

from .logs import LogUnreadable, read_log, read_records
from .report import html_report
from .runner import BatchedReplay, Replay, ReplayStopped
from .summary import ReplaySummary, replay_logs, replay_records

__all__ = [
    "BatchedReplay",
    "LogUnreadable",
    "Replay",
    "ReplayStopped",
    "ReplaySummary",
    "html_report",
    "read_log",
    "read_records",
    "replay_logs",
    "replay_records",
]
