"""``statemachine inquire``: ask the gateway about debits stuck in the submitted state, once or
in a loop, with the lender's own inquirer (``MODULE:FACTORY``)."""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from ..errors import StoreError
from ..inquiry import Ask, Inquiry, InquiryPolicy, run_inquiries
from .options import Duration, db_option, load_factory, load_spec, open_engine, spec_option


def _schedule(ctx: click.Context, param: click.Parameter, value: str | None) -> InquiryPolicy:
    if value is None:
        return InquiryPolicy()
    duration = Duration()
    delays = [duration.convert(part, param, ctx) for part in value.split(",")]
    try:
        return InquiryPolicy(delays=tuple(delays))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command()
@db_option()
@spec_option
@click.option(
    "--inquirer",
    required=True,
    metavar="MODULE:FACTORY",
    help="A callable returning the inquirer: a function that takes a Debit and returns the "
    "gateway's answer as an Event, a mapping of its fields, or None for no news.",
)
@click.option(
    "--schedule",
    "policy",
    callback=_schedule,
    metavar="DURATIONS",
    help="Comma-separated waits: the silence before a debit's first inquiry, then the wait "
    "after each inquiry; the last repeats. Default: 5m,15m,1h,4h,12h.",
)
@click.option(
    "--loop",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Keep asking, a round every this many seconds, until SIGTERM or Ctrl-C.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most this many debits a round."
)
def inquire(db: str, spec_path: Path | None, inquirer: str, policy: InquiryPolicy,
            loop: float | None, limit: int | None) -> None:  # fmt: skip
    """Ask the gateway about debits stuck in the submitted state, on a backoff schedule.

    A debit is asked about once it has heard nothing for the schedule's first wait, then
    again after each further wait, per debit and attempt; every inquiry is recorded, so a
    restart does not ask again at once. The inquirer's answer is applied as an event (origin
    `inquiry`, source `gateway` unless it names one); a question that raises is recorded as
    an error and asked again later. Nothing is failed for want of an answer. Prints a line
    per inquiry, then one per round. The database must exist.

    \b
    The factory returns the inquirer, for example:
        def make():
            def ask(debit):                      # a statemachine.Debit
                status = gateway.query(debit.debit_id)
                if status == "PAID":
                    return {"type": "succeeded", "event_id": f"query-{debit.debit_id}"}
                return None                      # no news: asked again later
            return ask

    \b
    Example:
        statemachine inquire --db march.sqlite --inquirer mylender.gateway:inquirer
        statemachine inquire --db march.sqlite --inquirer mylender.gateway:inquirer --loop 60
        statemachine inquire --db march.sqlite --inquirer mylender.gateway:inquirer --schedule 10m,1h
    """
    with ExitStack() as opened:
        engine = opened.enter_context(open_engine(db, load_spec(spec_path), create=False))
        engine.inquiry = policy
        ask = load_inquirer(inquirer, opened)
        stop = threading.Event()
        if loop is not None:
            _stop_on_signals(stop)
        rounds = iter(range(1, 2**62))

        def report(done: list[Inquiry]) -> None:
            for inquiry in done:
                click.echo(f"{inquiry.debit_id} #{inquiry.attempt}: {inquiry.outcome}; "
                           f"next {inquiry.next_at.isoformat()}")  # fmt: skip
            answered = sum(i.answer is not None for i in done)
            errors = sum(i.error is not None for i in done)
            click.echo(f"round {next(rounds)}: asked {len(done)}, answered {answered}, "
                       f"errors {errors}")  # fmt: skip
            if loop is None:
                stop.set()

        run_inquiries(engine, ask, stop_event=stop, every=loop or 0, limit=limit,
                      on_round=report, on_error=_warn if loop is not None else None)  # fmt: skip


def load_inquirer(path: str, opened: ExitStack) -> Ask:
    ask = load_factory(path, "--inquirer")
    if not callable(ask):
        raise click.BadParameter(
            f"{path!r} returned a {type(ask).__name__}; expected a function that takes a "
            "Debit and returns an Event, a mapping or None",
            param_hint="'--inquirer'",
        )
    close = getattr(ask, "close", None)
    if callable(close):
        opened.callback(close)
    checked: Ask = ask
    return checked


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT end the loop once the round in progress is recorded."""

    def handler(number: int, frame: Any) -> None:
        # Set from another thread: the main thread may hold the event's lock right now.
        threading.Thread(target=stop.set, daemon=True).start()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handler)


def _warn(error: StoreError) -> None:
    click.echo(f"round failed, retrying next round: {error}", err=True)
