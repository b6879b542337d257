"""Commands that deliver notices: ``dispatch``, and ``receipts`` for what providers said."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import click
import orjson

from ..dispatch import Sender
from ..engine import Engine
from ..errors import InvalidDefinition
from ..messages import Message, mask
from ..receipts import ReceiptResult, receipt_fields
from ..records import Notice
from ..replay import LogUnreadable, read_log
from .options import (
    db_option,
    delivery,
    load_factory,
    load_spec,
    open_engine,
    pairs,
    spec_option,
)


@click.command()
@db_option()
@spec_option
@click.option(
    "--sender",
    "sender_paths",
    multiple=True,
    metavar="SENDER",
    help="Where notices go, tried in the order given: an http:// or https:// URL POSTs each "
    "notice as signed JSON (see --http-secret); `print` writes each notice's text for its "
    "customer to standard output; MODULE:FACTORY is a callable returning a sender. Without "
    "--sender, only shows what would be sent.",
)
@click.option(
    "--http-secret",
    envvar="STATEMACHINE_HTTP_SECRET",
    show_envvar=True,
    metavar="SECRET",
    help="The shared secret that signs what URL senders POST (X-Statemachine-Signature). "
    "Prefer the environment variable: a command line is visible to other users.",
)
@click.option(
    "--loop",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Keep dispatching, pausing this long between rounds, until interrupted.",
)
@click.option("--limit", type=int, default=None, help="At most this many notices a round.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Send up to this many notices at once (senders must then be thread-safe).",
)
def dispatch(db: str, spec_path: Path | None, sender_paths: tuple[str, ...],
             http_secret: str | None, loop: float | None, limit: int | None,
             concurrency: int) -> None:  # fmt: skip
    """Send the notices that are due, once or in a loop.

    A notice is sent only if it still states the debit's outcome, else cancelled as
    superseded. Senders are tried in order until one accepts; delivery is at least once,
    with the notice id as the idempotency key. Without --sender nothing is sent or changed:
    the command lists what would be sent and what cancelled. A URL sender is named `http`
    (then `http-2`, ...); a 4xx answer passes the notice to the next sender, a 5xx or a
    timeout retries it later, a 429 pauses that sender.

    \b
    Example:
        statemachine dispatch --db march.sqlite                     # a look, no change
        statemachine dispatch --db march.sqlite --sender mylender.notify:sms --loop 30
        statemachine dispatch --db march.sqlite --sender mylender.notify:sms --concurrency 64
        statemachine dispatch --db march.sqlite --sender https://hooks.example.com/notices
    """
    with ExitStack() as opened:
        senders = load_senders(sender_paths, http_secret, opened)
        _dispatch(db, spec_path, senders, loop, limit, concurrency)


def _dispatch(db: str, spec_path: Path | None, senders: list[Sender], loop: float | None,
              limit: int | None, concurrency: int) -> None:  # fmt: skip
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        if not senders:
            due = engine.preview_due(limit=limit)
            for notice, sends in due:
                verb = "would send  " if sends else "would cancel"
                click.echo(f"{verb} {notice.notice_id} ({notice.outcome})")
            click.echo(
                f"{len(due)} notice(s) due; nothing sent (dry run): "
                "pass --sender URL, MODULE:FACTORY or print, to send"
            )
            return
        while True:
            for notice in engine.dispatch_due(senders, limit=limit, concurrency=concurrency):
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


def load_senders(
    paths: tuple[str, ...], http_secret: str | None, opened: ExitStack
) -> list[Sender]:
    """The senders in order; each that has a ``close`` is closed when ``opened`` is."""
    senders: list[Sender] = []
    urls = 0
    for path in paths:
        if path.partition(":")[0].lower() in ("http", "https"):
            urls += 1
            sender = _http_sender(path, http_secret, "http" if urls == 1 else f"http-{urls}")
        else:
            sender = _load_sender(path)
        close = getattr(sender, "close", None)
        if callable(close):
            opened.callback(close)
        senders.append(sender)
    return senders


def _http_sender(url: str, secret: str | None, name: str) -> Sender:
    # httpx is imported only when a URL is given: every other command starts without it.
    from ..channels.http import HttpSender, masked_url

    if not secret:
        raise click.BadParameter(
            f"{masked_url(url)} needs a secret to sign notices with: "
            "set STATEMACHINE_HTTP_SECRET or pass --http-secret",
            param_hint="'--sender'",
        )
    try:
        return HttpSender(url, secret, name=name)
    except InvalidDefinition as exc:
        raise click.BadParameter(str(exc), param_hint="'--sender'") from None


def _load_sender(path: str) -> Sender:
    if path == "print":
        return PrintSender()
    sender: Sender = load_factory(path, "--sender")
    return sender


@click.command()
@click.argument("files", nargs=-1, required=True)
@db_option()
@spec_option
def receipts(files: tuple[str, ...], db: str, spec_path: Path | None) -> None:
    """Record providers' delivery receipts (JSON lines) and print the delivery rate.

    \b
    Each line is one receipt:
      {"notice_id": "loan-42/2026-03#1:succeeded", "channel": "sms",
       "status": "delivered", "occurred_at": "2026-03-05T10:00:09+08:00", "ref": "SMS-1"}

    status is delivered or undelivered. Receipts may come late, twice or out of order: each
    gets a verdict (applied, duplicate, stale, rejected) and is stored, a bad line with its
    text; bad and rejected lines are listed on standard error with file and line. An
    undelivered receipt makes its notice due again for the next channel, which `statemachine
    dispatch` then sends. The database must exist.

    \b
    Example:
        statemachine receipts sms-receipts.jsonl push-receipts.jsonl --db march.sqlite
    """
    for name in files:  # before the database is opened
        if name != "-" and not Path(name).is_file():
            why = "is a directory" if Path(name).is_dir() else "no such file"
            raise click.ClickException(f"cannot read {name}: {why}")
    verdicts: Counter[str] = Counter()
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        try:
            for origin, line in read_log(files):
                result = _receipt(engine, origin, line)
                verdicts[result.verdict.value] += 1
                if result.verdict == "rejected":
                    click.echo(f"{origin}: rejected: {result.reason}", err=True)
        except OSError as exc:
            raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
        except LogUnreadable as exc:
            raise click.ClickException(f"{exc}; the receipts before it are stored") from None
        metrics = engine.metrics()
    click.echo(f"receipts by verdict {pairs(dict(verdicts))} (this run)")
    click.echo(f"delivery rate       {delivery(metrics)}")


def _receipt(engine: Engine, origin: str, line: bytes) -> ReceiptResult:
    """One JSON line recorded as a receipt, or stored as rejected saying why."""
    text = line.decode("utf-8", "backslashreplace")
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return engine.reject_receipt(f"line: expected a JSON object, got {exc}", text, origin)
    fields, problem = receipt_fields(data)
    if problem is not None:
        return engine.reject_receipt(problem, text, origin)
    return engine.record_receipt(**fields, raw=text, origin=origin)
