"""``statemachine serve``: the engine as an HTTP service."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import click

from ..engine import Engine
from ..service.app import create_app
from ..service.auth import exposure_problem
from ..service.loops import Loop, dispatch_loop, inquiry_loop
from ..service.run import serve as run_service
from ..spec import Spec
from .inquire import load_inquirer
from .notices import load_senders
from .options import load_spec, open_engine, spec_option

F = TypeVar("F", bound=Callable[..., Any])


def _pause_option(name: str, default: float, rounds: str) -> Callable[[F], F]:
    """``name SECONDS``: the pause between a loop's rounds."""
    return click.option(
        name,
        default=default,
        show_default=True,
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help=f"Pause between {rounds}.",
    )


@click.command()
@click.option(
    "--db",
    required=True,
    metavar="TARGET",
    help="SQLite file or postgresql:// DSN holding the debits (created if missing).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any but loopback needs --token.",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed).",
)
@click.option(
    "--token",
    envvar="STATEMACHINE_TOKEN",
    metavar="TOKEN",
    help="Bearer token every endpoint but /healthz and the webhooks needs (or STATEMACHINE_TOKEN).",
)
@click.option(
    "--gocardless-secret",
    envvar="STATEMACHINE_GOCARDLESS_SECRET",
    metavar="SECRET",
    help="GoCardless webhook endpoint secret; without it the webhook answers 404 "
    "(or STATEMACHINE_GOCARDLESS_SECRET).",
)
@click.option(
    "--body-limit",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body in bytes; a larger one is answered 413.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
    help="What the server logs to standard error (trace: every ASGI message).",
)
@click.option(
    "--sender",
    "sender_paths",
    multiple=True,
    metavar="SENDER",
    help="Dispatch due notices inside the service through these senders, tried in order "
    "(as `statemachine dispatch --sender`: a URL, MODULE:FACTORY or print).",
)
@click.option(
    "--http-secret",
    envvar="STATEMACHINE_HTTP_SECRET",
    metavar="SECRET",
    help="The secret URL senders sign with (or STATEMACHINE_HTTP_SECRET).",
)
@_pause_option("--dispatch-every", 5.0, "dispatch rounds (with --sender)")
@click.option(
    "--concurrency",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Notices sent at once (with --sender; senders must then be thread-safe).",
)
@click.option(
    "--inquirer",
    metavar="MODULE:FACTORY",
    help="Ask about stuck debits inside the service with this inquirer "
    "(as `statemachine inquire --inquirer`).",
)
@_pause_option("--inquire-every", 60.0, "inquiry rounds (with --inquirer)")
@spec_option
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    gocardless_secret: str | None,
    body_limit: int,
    log_level: str,
    sender_paths: tuple[str, ...],
    http_secret: str | None,
    dispatch_every: float,
    concurrency: int,
    inquirer: str | None,
    inquire_every: float,
    spec_path: Path | None,
) -> None:  # fmt: skip
    """Serve the engine over HTTP until SIGTERM: POST /events, POST /webhooks/gocardless,
    GET /debits/ID, GET /metrics, GET /healthz, and the operator's page at /.

    An event is answered with its verdict only once it is committed; requests that arrive
    together share one commit. Prints `serving on http://HOST:PORT` once it listens. With
    --sender it also dispatches due notices, with --inquirer it asks about stuck debits, each
    in a loop of its own on its own connection (or run `dispatch --loop` and `inquire --loop`
    beside it).

    \b
    Example:
        statemachine serve --db demo.sqlite --port 8080
        statemachine serve --db demo.sqlite --sender mylender.notify:sms --dispatch-every 2
    """
    problem = exposure_problem(host, token)
    if problem is not None:
        raise click.UsageError(problem)
    if gocardless_secret is not None and not gocardless_secret.strip():
        raise click.UsageError("--gocardless-secret: expected a secret, got an empty one")
    if db == ":memory:" and (sender_paths or inquirer):
        raise click.UsageError(
            "--sender and --inquirer need a store other connections can open: "
            "a file or a postgresql:// DSN, not :memory:"
        )
    spec = load_spec(spec_path)
    with ExitStack() as opened:
        engine = opened.enter_context(open_engine(db, spec))
        # Reads on a connection of their own: a page rendered never holds a commit back.
        reader = (
            opened.enter_context(open_engine(db, spec, create=False)) if db != ":memory:" else None
        )
        loops: list[Loop] = []
        if sender_paths:
            senders = load_senders(sender_paths, http_secret, opened)
            loops.append(dispatch_loop(_opener(db, spec), senders, dispatch_every,
                                       concurrency=concurrency))  # fmt: skip
        if inquirer is not None:
            ask = load_inquirer(inquirer, opened)
            loops.append(inquiry_loop(_opener(db, spec), ask, inquire_every))
        app = create_app(
            engine,
            reader=reader,
            token=token,
            gocardless_secret=gocardless_secret,
            body_limit=body_limit,
            loops=loops,
        )
        run_service(app, host, port, log_level=log_level)


def _opener(db: str, spec: Spec) -> Callable[[], Engine]:
    """Opens a loop's own engine on the service's store."""
    return lambda: open_engine(db, spec, create=False)
