"""The service's routes: events in, verdicts out after the commit, a debit's history,
Prometheus metrics and a health check, on Starlette.

Every answer is JSON except ``/metrics`` (Prometheus text). Failures:

========================  =====================================================================
400                       bad input: the body names the place and field; stored as ``invalid``
401                       no or a wrong bearer token
404                       ``GET /debits/ID`` of a debit no event named
413                       a body over the limit (nothing stored)
498                       a webhook whose signature does not match (nothing stored)
503 + ``Retry-After``     the store stayed busy (nothing stored), or ``/healthz`` without it
========================  =====================================================================
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..engine import Engine
from ..errors import StoreBusy, StoreError
from ..operations import prometheus_text
from ..precedence import Verdict
from . import intake, webhooks
from .auth import BearerAuth
from .loops import Loop
from .page import debit_page, operator_page
from .privacy import masked_text
from .views import debit_json, result_json
from .writer import Entries, Writer

log = logging.getLogger("statemachine.service")
RETRY_AFTER: Final = "1"  # seconds: a busy store is usually free again within one
HEALTH_TIMEOUT: Final = 5.0  # seconds the store has to answer /healthz
OPEN_PATHS: Final = ("/healthz", "/webhooks/gocardless")


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (orjson)."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``, contact details masked."""
    return answer({"error": masked_text(message)}, status, headers)


def create_app(
    engine: Engine,
    *,
    reader: Engine | None = None,
    token: str | None = None,
    gocardless_secret: str | None = None,
    body_limit: int = 1_000_000,
    routes: Sequence[BaseRoute] = (),
    loops: Sequence[Loop] = (),
) -> Starlette:
    """The service on ``engine``. ``reader``: a second engine on the same store that answers
    the reads (the pages, ``/metrics``, ``GET /debits/ID``) on a thread of its own, so that
    they never hold a commit back (None: they run between commits). ``token``: the bearer token every endpoint but ``/healthz``
    and the webhooks needs (None: none needed); ``gocardless_secret``: the webhook
    endpoint's secret (None: the webhook answers 404); ``routes`` are added after the
    service's own (``/`` is the operator's page); ``loops`` (dispatch, inquiry: see
    :mod:`~statemachine.service.loops`) run while the service does. ``app.state.writer`` is the :class:`~statemachine.service.writer.Writer`
    while the app runs: ``await request.app.state.writer.read(fn)`` reads the engine.

    >>> app = create_app(Engine.in_memory(), token="t0ken")
    >>> sorted(route.path for route in app.routes)[:4]
    ['/', '/debits/{debit_id:path}', '/events', '/healthz']
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = Writer(engine, reader)
        writer.start()
        app.state.writer = writer
        started: list[Loop] = []
        try:
            for loop in loops:
                await asyncio.to_thread(loop.start)
                started.append(loop)
            # What exists now lives as long as the service: the collector need not scan it again.
            gc.freeze()
            yield
        finally:
            for loop in started:  # each finishes the round in progress
                await asyncio.to_thread(loop.stop)
            await asyncio.to_thread(writer.stop)  # every queued request is committed first

    async def post_events(request: Request) -> Response:
        try:
            body = await intake.read_body(
                request.stream(), request.headers.get("content-length"), body_limit
            )
        except intake.BodyTooLarge as exc:
            return error(413, str(exc))
        found = intake.entries(body)
        if not found:
            return error(400, "body: expected one JSON event, a JSON array or JSON lines, "
                         "got none")  # fmt: skip
        return await commit(request, found)

    async def post_gocardless(request: Request) -> Response:
        if gocardless_secret is None:
            return error(404, "the GoCardless webhook needs --gocardless-secret")
        try:
            body = await intake.read_body(
                request.stream(), request.headers.get("content-length"), body_limit
            )
        except intake.BodyTooLarge as exc:
            return error(413, str(exc))
        if not webhooks.signed(body, gocardless_secret, request.headers.get("webhook-signature")):
            return error(webhooks.INVALID_SIGNATURE, "Webhook-Signature: expected the "
                         "HMAC-SHA256 of the body with the endpoint's secret")  # fmt: skip
        return await commit(request, webhooks.entries(body))

    async def commit(request: Request, entries: Entries) -> Response:
        try:
            results = await request.app.state.writer.write(entries)
        except StoreBusy as exc:
            return error(503, str(exc), {"Retry-After": RETRY_AFTER})
        except StoreError as exc:
            log.error("%s %s: %s", request.method, request.url.path, masked_text(str(exc)))
            return error(500, str(exc))
        places = [intake.place(entry[2]) for entry in entries] if not callable(entries) else None
        listed = []
        problems = []
        for index, result in enumerate(results):
            shown = result_json(result)
            where = places[index] if places is not None else None
            if where is not None:
                shown["at"] = where
            listed.append(shown)
            if result.verdict is Verdict.INVALID:
                problems.append(f"{where}: {shown['reason']}" if where else shown["reason"])
        if problems:
            return answer({"error": "; ".join(problems), "results": listed}, 400)
        return answer({"results": listed})

    async def get_debit(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):  # a browser, from the page
            return await debit_page(request)
        debit_id = request.path_params["debit_id"]
        found = await request.app.state.writer.read(lambda e: debit_json(e, debit_id))
        if found is None:
            return error(404, f"debit_id: no event has named {debit_id!r}")
        return answer(found)

    async def get_metrics(request: Request) -> Response:
        metrics = await request.app.state.writer.read(lambda e: e.metrics())
        return Response(prometheus_text(metrics), media_type=CONTENT_TYPE_LATEST)

    async def get_healthz(request: Request) -> Response:
        try:
            await asyncio.wait_for(
                request.app.state.writer.between_commits(lambda e: e.get("")), HEALTH_TIMEOUT
            )
        except TimeoutError:
            problem = f"the store did not answer within {HEALTH_TIMEOUT:g} s"
            return error(503, f"store: {problem}", {"Retry-After": RETRY_AFTER})
        except Exception as exc:  # whatever the driver raised: the store does not answer
            problem = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, StoreError) else str(exc)
            )
            return error(503, f"store: {problem}", {"Retry-After": RETRY_AFTER})
        return answer({"status": "ok"})

    return Starlette(
        routes=[
            Route("/events", post_events, methods=["POST"]),
            Route("/webhooks/gocardless", post_gocardless, methods=["POST"]),
            Route("/debits/{debit_id:path}", get_debit, methods=["GET"]),
            Route("/metrics", get_metrics, methods=["GET"]),
            Route("/healthz", get_healthz, methods=["GET"]),
            Route("/", operator_page, methods=["GET"]),
            *routes,
        ],
        middleware=[Middleware(BearerAuth, token=token, open_paths=OPEN_PATHS)],
        lifespan=lifespan,
    )
