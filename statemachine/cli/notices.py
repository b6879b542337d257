"""Commands that deliver notices: ``dispatch``."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import click

from ..dispatch import Sender
from ..messages import Message, mask
from ..records import Notice
from .options import (
    db_option,
    load_spec,
    open_engine,
    spec_option,
)


@click.command()
@db_option()
@spec_option
@click.option(
    "--sender",
    "sender_paths",
    multiple=True,
    metavar="MODULE:FACTORY",
    help="A callable returning a sender, tried in the order given; `print` writes each "
    "notice's text for its customer to standard output. Without --sender, only shows what would be sent.",
)
@click.option(
    "--loop",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Keep dispatching, pausing this long between rounds, until interrupted.",
)
@click.option("--limit", type=int, default=None, help="At most this many notices a round.")
def dispatch(db: str, spec_path: Path | None, sender_paths: tuple[str, ...], loop: float | None,
             limit: int | None) -> None:  # fmt: skip
    """Send the notices that are due, once or in a loop.

    A notice is sent only if it still states the debit's outcome, else cancelled as
    superseded. Senders are tried in order until one accepts; delivery is at least once,
    with the notice id as the idempotency key. Without --sender nothing is sent or changed:
    the command lists what would be sent and what cancelled.

    \b
    Example:
        statemachine dispatch --db march.sqlite                     # a look, no change
        statemachine dispatch --db march.sqlite --sender mylender.notify:sms --loop 30
    """
    senders = [_load_sender(path) for path in sender_paths]
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        if not senders:
            due = engine.preview_due(limit=limit)
            for notice, sends in due:
                verb = "would send  " if sends else "would cancel"
                click.echo(f"{verb} {notice.notice_id} ({notice.outcome})")
            click.echo(
                f"{len(due)} notice(s) due; nothing sent (dry run): "
                "pass --sender MODULE:FACTORY, or --sender print, to send"
            )
            return
        while True:
            for notice in engine.dispatch_due(senders, limit=limit):
                where = f" via {notice.channel}" if notice.channel else ""
                click.echo(
                    f"{notice.status:9} {notice.notice_id}{where} {notice.status_reason or ''}".rstrip()
                )
            if loop is None:
                return
            try:
                time.sleep(loop)
            except KeyboardInterrupt:
                return


class PrintSender:
    """``--sender print``: writes each notice, as its customer would read it, to standard
    output instead of to the customer; contact details masked."""

    name = "print"

    def send(self, notice: Notice) -> None:
        click.echo(f"-> {notice.debit_id} #{notice.attempt}: {notice.text()} [{notice.notice_id}]")

    def send_message(self, message: Message) -> None:
        to = ", ".join(f"{channel} {mask(c)}" for channel, c in message.contact.items())
        template = f" {message.template_id}" if message.template_id else ""
        click.echo(
            f"-> {message.debit_id} #{message.attempt} ({message.locale}{template}"
            f"{'; ' + to if to else ''}): {message.text} [{message.notice_id}]"
        )


def _load_sender(path: str) -> Sender:
    if path == "print":
        return PrintSender()
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(f"cannot load {path!r} ({exc}); expected MODULE:FACTORY") from None
    sender: Sender = factory()
    return sender
