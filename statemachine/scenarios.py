"""Golden scenarios: events in arrival order with the results they must produce.

A scenario is a TOML file (see ``specs/scenarios/``). Each ``[[steps]]`` applies one event
(``apply = {...}``) on the replay clock (N5) and may check its ``verdict`` and the debit's
``state``, or runs a ``dispatch = <time>`` and checks which notices were ``sent`` and
``cancelled`` (written ``kind@attempt``), or records a delivery receipt (``receipt = {notice
= "kind@attempt", channel, status, occurred_at}``, N8) and may check its ``verdict``.
``channels`` names the channels notices go out on, in order (default: one, ``replay``).
``[expect]`` checks the end: ``state``, ``attempt``, ``needs_review``, ``review_reason``,
``notices`` (``kind@attempt:status``, every notice) and ``told`` (the outcome the customer's
last notice states, N6), after the clock has passed every settle window and due notices have
gone out.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from .clock import ManualClock
from .dispatch import CountingSender
from .engine import Engine
from .events import Event, parse_time
from .notices import last_told, notice_id
from .records import Notice
from .replay import Replay
from .spec import Spec

EngineFactory = Callable[[Spec, ManualClock], Engine]


@attrs.frozen
class Scenario:
    name: str
    path: Path
    debit_id: str
    steps: tuple[Mapping[str, Any], ...]
    expect: Mapping[str, Any]
    settle_window: timedelta | None
    channels: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        path = Path(path)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        window = data.get("settle_window_seconds")
        return cls(
            name=data.get("name", path.stem),
            path=path,
            debit_id=data.get("debit_id", "loan-42/2026-03"),
            steps=tuple(data.get("steps", ())),
            expect=data.get("expect", {}),
            settle_window=None if window is None else timedelta(seconds=window),
            channels=tuple(data.get("channels", ())),
        )

    def run(self, spec: Spec | None = None, make_engine: EngineFactory | None = None) -> list[str]:
        """Run the scenario on a fresh engine; returns the mismatches (empty when it passes)."""
        spec = spec or Spec.default()
        if self.settle_window is not None:
            spec = spec.evolve(settle_window=self.settle_window)
        clock = ManualClock()
        engine = (make_engine or _in_memory)(spec, clock)
        replay = Replay(engine, [CountingSender(name) for name in self.channels] or None)
        problems: list[str] = []
        for number, step in enumerate(self.steps, 1):
            where = f"step {number}"
            if "apply" in step:
                fields = {"debit_id": self.debit_id, **step["apply"]}
                result = replay.apply(Event.from_dict(fields))
                where += f" ({fields.get('event_id')})"
                _check(problems, where, "verdict", step.get("verdict"), str(result.verdict))
                _check(problems, where, "state", step.get("state"), result.state)
            elif "dispatch" in step:
                replay.clock.advance_to(parse_time(step["dispatch"], "dispatch"))
                handled = replay.dispatch()
                for status in ("sent", "cancelled"):
                    if status in step:
                        got = sorted(_label(n) for n in handled if n.status == status)
                        _check(problems, where, status, sorted(step[status]), got)
            elif "receipt" in step:
                fields = dict(step["receipt"])
                kind, _, attempt = str(fields.pop("notice", "")).partition("@")
                fields["notice_id"] = notice_id(self.debit_id, int(attempt or 1), kind)
                fields["at"] = fields.pop("occurred_at", None)
                receipt = replay.receipt(fields)
                where += f" (receipt {fields.get('status')} on {fields.get('channel')})"
                _check(problems, where, "verdict", step.get("verdict"), str(receipt.verdict))
            else:
                problems.append(f"{where}: needs `apply`, `dispatch` or `receipt`")
        replay.finish()
        debit = engine.get(self.debit_id)
        if debit is None:
            return [*problems, f"debit {self.debit_id!r} was never created"]
        expect = self.expect
        for field in ("state", "attempt", "needs_review", "review_reason"):
            if field in expect:
                _check(problems, "end", field, expect[field], getattr(debit, field))
        if "notices" in expect:
            got = sorted(f"{_label(n)}:{n.status}" for n in engine.notices(self.debit_id))
            _check(problems, "end", "notices", sorted(expect["notices"]), got)
        if "told" in expect:
            told = last_told(engine.notices(self.debit_id))
            _check(problems, "end", "told", expect["told"], told and told.outcome)
        return problems


def bundled_scenarios() -> list[Path]:
    from .spec import bundled_path

    return sorted(bundled_path("scenarios").glob("*.toml"))


def _in_memory(spec: Spec, clock: ManualClock) -> Engine:
    return Engine.in_memory(spec=spec, clock=clock)


def _label(notice: Notice) -> str:
    return f"{notice.kind}@{notice.attempt}"


def _check(problems: list[str], where: str, field: str, expected: Any, got: Any) -> None:
    if expected is not None and expected != got:
        problems.append(f"{where}: {field} expected {expected!r}, got {got!r}")
