"""``statemachine serve``: the engine as an HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from ..service.app import create_app
from ..service.auth import exposure_problem
from ..service.run import serve as run_service
from .options import load_spec, open_engine, spec_option


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
@spec_option
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    gocardless_secret: str | None,
    body_limit: int,
    log_level: str,
    spec_path: Path | None,
) -> None:  # fmt: skip
    """Serve the engine over HTTP until SIGTERM: POST /events, POST /webhooks/gocardless,
    GET /debits/ID, GET /metrics, GET /healthz.

    An event is answered with its verdict only once it is committed; requests that arrive
    together share one commit. Prints `serving on http://HOST:PORT` once it listens.

    \b
    Example:
        statemachine serve --db demo.sqlite --port 8080
    """
    problem = exposure_problem(host, token)
    if problem is not None:
        raise click.UsageError(problem)
    if gocardless_secret is not None and not gocardless_secret.strip():
        raise click.UsageError("--gocardless-secret: expected a secret, got an empty one")
    spec = load_spec(spec_path)
    engine = open_engine(db, spec)
    # Reads on a connection of their own: a page rendered never holds a commit back.
    reader = open_engine(db, spec, create=False) if db != ":memory:" else None
    try:
        app = create_app(
            engine,
            reader=reader,
            token=token,
            gocardless_secret=gocardless_secret,
            body_limit=body_limit,
        )
        run_service(app, host, port, log_level=log_level)
    finally:
        if reader is not None:
            reader.close()
        engine.close()
