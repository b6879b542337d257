"""The debit machine as data: load a spec file, validate it, build the one shared Machine.

The transition table in ``specs/debit.toml`` drives the fold (``precedence.py``): each event
is a trigger, each guard a precedence check the fold evaluates. The ``transitions`` Machine
built from the same table validates it and draws it (``statemachine diagram``); it does not
decide. Code outside this module names states only through the spec: :meth:`Spec.state_after`
says which state an event type leads to, so a spec may call its states what it likes.

>>> spec = Spec.default()
>>> spec.edge("submitted", "succeeded").kind
'step'
>>> spec.authority("settlement"), spec.authority("no-such-source")
(3, 2)
>>> spec.in_flight, sorted(spec.collected)
('submitted', ['reversed', 'succeeded'])
"""

from __future__ import annotations

import functools
import tomllib
from collections import deque
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import attrs
from transitions.extensions import GraphMachine

from .errors import SpecError
from .events import EVENT_TYPES, FAILED, RETRIED, REVERSED, SUBMITTED, SUCCEEDED

KINDS: Final = frozenset({"step", "skip-ahead", "correction", "corroboration", "retry"})
STRONGER: Final = "stronger"
NEXT_ATTEMPT: Final = "next_attempt"
GUARDS: Final = frozenset({STRONGER, NEXT_ATTEMPT})
_TOP_LEVEL: Final = frozenset(
    {
        "name",
        "initial",
        "states",
        "outcomes",
        "settle_window_seconds",
        "receipt_timeout_seconds",
        "unknown_source",
        "authorities",
        "transitions",
    }
)
_EDGE_KEYS: Final = frozenset({"trigger", "source", "dest", "kind", "guard"})


def bundled_path(*parts: str) -> Path:
    """A file under specs/: inside the installed package, or beside it in a source checkout."""
    installed = Path(__file__).with_name("specs")
    root = installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "specs"
    return root.joinpath(*parts)


@attrs.frozen
class Edge:
    """One allowed move: ``trigger`` takes a debit from ``source`` to ``dest`` if ``guard`` holds."""

    trigger: str
    source: str
    dest: str
    kind: str
    guard: str | None = None


class _Blueprint:
    """The single model the shared Machine is built around; debits never get their own."""

    state: str


@attrs.frozen(eq=False)
class Spec:
    """A validated machine spec. Build with :meth:`load`, :meth:`from_dict` or :meth:`default`."""

    name: str
    initial: str
    states: tuple[str, ...]
    outcomes: frozenset[str]
    settle_window: timedelta
    authorities: Mapping[str, int]
    unknown_source: str
    transitions: tuple[Edge, ...]
    origin: str = "<dict>"
    # N8: how long a sent notice waits for a delivery receipt before it falls back to the
    # next channel; zero: it does not wait (without a receipt it stays sent).
    receipt_timeout: timedelta = timedelta(0)
    edges: Mapping[tuple[str, str], Edge] = attrs.field(init=False)
    after: Mapping[str, str] = attrs.field(init=False)
    machine: GraphMachine = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        edges = {(edge.source, edge.trigger): edge for edge in self.transitions}
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "after", _states_after(self.transitions, self.origin))
        object.__setattr__(self, "machine", self._build_machine())

    def state_after(self, trigger: str) -> str:
        """The state an event of type ``trigger`` moves a debit to; the trigger's own name when
        the spec has no such move."""
        return self.after.get(trigger, trigger)

    @property
    def in_flight(self) -> str:
        """The state of a debit submitted and awaiting its outcome: stuck if it stays."""
        return self.state_after(SUBMITTED)

    @property
    def collected(self) -> frozenset[str]:
        """The states of an attempt whose money was taken (succeeded, or since reversed)."""
        return frozenset({self.state_after(SUCCEEDED), self.state_after(REVERSED)})

    @property
    def failed(self) -> str:
        """The failure state, whose notice waits the settle window (N2)."""
        return self.after.get(FAILED, FAILED)  # state_after(FAILED): planning asks at every outcome

    @classmethod
    @functools.cache
    def default(cls) -> Spec:
        """The bundled ``specs/debit.toml``, loaded once per process."""
        return cls.load(bundled_path("debit.toml"))

    @classmethod
    def load(cls, path: str | Path) -> Spec:
        """Load and validate a spec file (TOML); problems raise :class:`SpecError` naming it."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(f"{path}: no such spec file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "<dict>") -> Spec:
        """Validate spec data; every problem raises :class:`SpecError` naming it and the fix."""

        def fail(message: str) -> SpecError:
            return SpecError(f"{origin}: {message}")

        unknown = sorted(set(data) - _TOP_LEVEL)
        if unknown:
            raise fail(
                f"unknown key {unknown[0]!r}; expected keys: {', '.join(sorted(_TOP_LEVEL))}"
            )
        states = data.get("states")
        if (
            not isinstance(states, list)
            or not states
            or not all(isinstance(s, str) for s in states)
        ):
            raise fail("`states` must be a non-empty list of state names")
        if len(set(states)) != len(states):
            raise fail("`states` lists a state twice")
        known = set(states)
        initial = data.get("initial")
        if not isinstance(initial, str) or initial not in known:
            raise fail(f"`initial` is {initial!r}, which is not one of the states {states}")
        outcomes = data.get("outcomes", [])
        for outcome in outcomes:
            if outcome not in known:
                raise fail(f"outcome {outcome!r} is not a state; add it to `states` or remove it")
        window = data.get("settle_window_seconds", 900)
        if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
            raise fail(f"`settle_window_seconds` must be a number >= 0, got {window!r}")
        timeout = data.get("receipt_timeout_seconds", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise fail(f"`receipt_timeout_seconds` must be a number >= 0, got {timeout!r}")
        authorities = data.get("authorities")
        if not isinstance(authorities, Mapping) or not authorities:
            raise fail("`authorities` must map source names to integer levels")
        for source, level in authorities.items():
            if isinstance(level, bool) or not isinstance(level, int):
                raise fail(f"authority of source {source!r} must be an integer, got {level!r}")
        unknown_source = data.get("unknown_source", "gateway")
        if unknown_source not in authorities:
            raise fail(f"`unknown_source` {unknown_source!r} must name one of the authorities")
        edges = tuple(_edges(data.get("transitions"), known, fail))
        seen: set[tuple[str, str]] = set()
        for edge in edges:
            if (edge.source, edge.trigger) in seen:
                raise fail(f"two transitions for trigger {edge.trigger!r} from {edge.source!r}")
            seen.add((edge.source, edge.trigger))
        unreachable = [s for s in states if s not in _reachable(initial, edges)]
        if unreachable:
            raise fail(
                f"state {unreachable[0]!r} is unreachable from {initial!r}; "
                "add a transition into it or remove it from `states`"
            )
        return cls(
            name=str(data.get("name", "debit")),
            initial=initial,
            states=tuple(states),
            outcomes=frozenset(outcomes),
            settle_window=timedelta(seconds=window),
            authorities=dict(authorities),
            unknown_source=unknown_source,
            transitions=edges,
            origin=origin,
            receipt_timeout=timedelta(seconds=timeout),
        )

    def evolve(self, **changes: Any) -> Spec:
        """A copy with some fields changed, for example ``settle_window=timedelta(0)``."""
        return attrs.evolve(self, **changes)

    def edge(self, source: str, trigger: str) -> Edge | None:
        """The move ``trigger`` makes from ``source``, if the spec has one."""
        return self.edges.get((source, trigger))

    def authority(self, source: str) -> int:
        """The authority of ``source``; an unknown source counts as ``unknown_source``."""
        level = self.authorities.get(source)
        return self.authorities[self.unknown_source] if level is None else level

    def diagram(self) -> str:
        """A Mermaid state diagram, drawn by transitions from the shared Machine."""
        return str(self.machine.get_graph().draw(None))

    def _build_machine(self) -> GraphMachine:
        # One Machine for every debit: its table drives the fold; debits are plain records.
        machine = GraphMachine(
            model=_Blueprint(),
            states=list(self.states),
            initial=self.initial,
            auto_transitions=False,
            graph_engine="mermaid",
            title=self.name,
            show_conditions=True,
        )
        for edge in self.transitions:
            # Guards are shown in the diagram; the fold evaluates them (precedence.py).
            conditions: list[str | Callable[..., bool | None]] = [edge.guard] if edge.guard else []
            machine.add_transition(edge.trigger, edge.source, edge.dest, conditions=conditions)
        return machine


def _edges(raw: object, states: set[str], fail: Any) -> list[Edge]:
    if not isinstance(raw, list) or not raw:
        raise fail("`transitions` must be a non-empty list of tables")
    edges: list[Edge] = []
    for number, item in enumerate(raw, 1):
        where = f"transition #{number}"
        if not isinstance(item, Mapping):
            raise fail(f"{where} must be a table")
        extra = sorted(set(item) - _EDGE_KEYS)
        if extra:
            raise fail(
                f"{where}: unknown key {extra[0]!r}; expected {', '.join(sorted(_EDGE_KEYS))}"
            )
        trigger, dest, kind, guard = (
            item.get("trigger"),
            item.get("dest"),
            item.get("kind"),
            item.get("guard"),
        )
        if trigger not in EVENT_TYPES:
            raise fail(
                f"{where}: trigger {trigger!r} is not an event type ({', '.join(EVENT_TYPES)})"
            )
        if kind not in KINDS:
            raise fail(f"{where}: kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        if guard is not None and guard not in GUARDS:
            raise fail(f"{where}: guard {guard!r} is not one of {', '.join(sorted(GUARDS))}")
        if trigger == RETRIED and guard != NEXT_ATTEMPT:
            raise fail(f"{where}: a `retried` transition needs guard = {NEXT_ATTEMPT!r}")
        sources = item.get("source")
        sources = [sources] if isinstance(sources, str) else sources
        if not isinstance(sources, list) or not sources:
            raise fail(f"{where}: `source` must be a state name or a list of them")
        for state in [*sources, dest]:
            if not isinstance(state, str) or state not in states:
                raise fail(f"{where}: unknown state {state!r}; declare it in `states`")
        assert isinstance(dest, str)
        edges.extend(Edge(trigger, source, dest, kind, guard) for source in sources)
    return edges


def _states_after(edges: tuple[Edge, ...], origin: str) -> dict[str, str]:
    """Each trigger's destination among the moves that change state: one per trigger."""
    after: dict[str, str] = {}
    for edge in edges:
        if edge.source == edge.dest or edge.trigger == RETRIED:
            continue
        seen = after.setdefault(edge.trigger, edge.dest)
        if seen != edge.dest:
            raise SpecError(
                f"{origin}: trigger {edge.trigger!r} leads to both {seen!r} and {edge.dest!r}; "
                "every move of one event type must end in the same state"
            )
    return after


def _reachable(initial: str, edges: tuple[Edge, ...]) -> set[str]:
    seen, queue = {initial}, deque([initial])
    while queue:
        state = queue.popleft()
        for edge in edges:
            if edge.source == state and edge.dest not in seen:
                seen.add(edge.dest)
                queue.append(edge.dest)
    return seen
