"""The HTTP channel: each notice is POSTed as JSON to a provider's URL, signed with a shared
secret, with the notice id as its idempotency key.

The request::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <notice_id>
    X-Statemachine-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>
    User-Agent: statemachine/<version>

    {"notice_id": ..., "debit_id": ..., "attempt": 1, "kind": ..., "outcome": ...,
     "due_at": "<ISO 8601>", "text": ...}

What the answer means: 2xx accepted; 408, 429 and 5xx, a timeout or a lost connection are
``DeliveryDeferred`` (try later; a ``Retry-After`` is honoured: the sender refuses at once,
without a request, until then); any other answer is ``DeliveryRefused`` (try the next channel).

>>> sender = HttpSender("https://ops:hunter2@hooks.example.com/notices", secret="s3cret")
>>> sender
HttpSender('http', 'https://***@hooks.example.com/notices')
>>> sign(b'{"notice_id":"d-1#1:succeeded"}', b"s3cret")[:15]
'sha256=ce319104'
>>> sender.close()
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

from ..clock import Clock, utc_now
from ..errors import DeliveryDeferred, DeliveryRefused, InvalidDefinition, TooManyRequests
from ..records import Notice

SIGNATURE_HEADER = "X-Statemachine-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Answers that say "not now" rather than "not this": the provider asks to be tried again.
TEMPORARY = frozenset({408, 429})

try:
    _VERSION = version("statemachine")
except PackageNotFoundError:  # run from a source tree that was never installed
    _VERSION = "0"
USER_AGENT = f"statemachine/{_VERSION}"


def notice_body(notice: Notice) -> dict[str, object]:
    """The JSON object a notice is sent as: the one place its fields are chosen.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 3, 5, 10, tzinfo=UTC)
    >>> notice_body(Notice("d-1#1:succeeded", "d-1", 1, "succeeded", "succeeded", at, at))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'notice_id': 'd-1#1:succeeded', 'debit_id': 'd-1', 'attempt': 1, 'kind': 'succeeded',
     'outcome': 'succeeded', 'due_at': '2026-03-05T10:00:00+00:00',
     'text': 'Your payment d-1 was collected.'}
    """
    return {
        "notice_id": notice.notice_id,
        "debit_id": notice.debit_id,
        "attempt": notice.attempt,
        "kind": notice.kind,
        "outcome": notice.outcome,
        "due_at": notice.due_at.isoformat(),
        "text": notice.text(),
    }


def sign(body: bytes, secret: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def masked_url(url: str | httpx.URL) -> str:
    """``url`` fit for messages and logs: any user and password, and every query value, hidden.

    >>> masked_url("https://ops:hunter2@hooks.example.com/n?token=abc&v=2#top")
    'https://***@hooks.example.com/n?token=***&v=***'
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<a URL that cannot be parsed>"
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{'***@' if '@' in parts.netloc else ''}{host}{parts.path}"
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        shown += "?" + "&".join(f"{key}=***" for key, _ in query)
    return shown


def retry_after(value: str | None, now: datetime, most: timedelta) -> timedelta | None:
    """How long a ``Retry-After`` header asks to wait (seconds or an HTTP date), at most
    ``most``; None when there is none or it cannot be read.

    >>> now = datetime(2026, 3, 5, 10, tzinfo=UTC)
    >>> retry_after("120", now, timedelta(hours=1)), retry_after("soon", now, timedelta(hours=1))
    (datetime.timedelta(seconds=120), None)
    >>> retry_after("Thu, 05 Mar 2026 10:00:30 GMT", now, timedelta(hours=1))
    datetime.timedelta(seconds=30)
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        # A huge number is capped before it becomes a timedelta that overflows.
        return min(timedelta(seconds=int(text[:12])), most)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC whose source zone is unknown
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), most)


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


class _HttpChannel(Generic[_Client]):
    """What the synchronous and asynchronous senders share: the request and what its answer
    means. Only the client that carries the request differs."""

    _client_class: type[_Client]

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        name: str = "http",
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_retry_after: timedelta = timedelta(hours=1),
        clock: Clock = utc_now,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidDefinition(f"an HTTP sender needs a name such as 'http', got {name!r}")
        self.name = name
        self.url = _checked_url(url)
        if not secret:
            raise InvalidDefinition(
                f"{name}: no secret; give the secret the receiver verifies "
                f"{SIGNATURE_HEADER} with (the CLI reads STATEMACHINE_HTTP_SECRET)"
            )
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        for label, seconds in (
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
        ):
            if not (isinstance(seconds, int | float) and seconds > 0 and math.isfinite(seconds)):
                raise InvalidDefinition(f"{name}: {label} must be seconds > 0, got {seconds!r}")
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self.max_retry_after = max_retry_after
        self.clock = clock
        # Set by a Retry-After: until then the channel refuses at once, without a request.
        self.not_before: datetime | None = None
        self._client: _Client = self._client_class(
            timeout=self.timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {masked_url(self.url)!r})"

    def _prepare(self, notice: Notice) -> tuple[bytes, dict[str, str]]:
        """The body and headers for ``notice``, or DeliveryDeferred while backing off."""
        if self.not_before is not None:
            now = self.clock()
            if now < self.not_before:
                raise DeliveryDeferred(
                    f"{masked_url(self.url)}: backing off until {self.not_before.isoformat()}, "
                    "as the provider asked (Retry-After)",
                    retry_after=self.not_before - now,
                )
            self.not_before = None
        body = orjson.dumps(notice_body(notice))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: notice.notice_id,
            SIGNATURE_HEADER: sign(body, self._secret),
        }
        return body, headers

    def _settle(self, response: httpx.Response) -> None:
        """Return if the provider accepted; raise what its answer means otherwise."""
        status = response.status_code
        if 200 <= status < 300:
            return
        said = f"{masked_url(self.url)} answered {status} {response.reason_phrase}".rstrip()
        if status in TEMPORARY or status >= 500:
            now = self.clock()
            wait = retry_after(response.headers.get("Retry-After"), now, self.max_retry_after)
            if wait is not None:
                self.not_before = now + wait
                said += f"; retry after {wait.total_seconds():g}s"
            if status == 429:  # dispatch pauses this channel for every worker, not the notice
                raise TooManyRequests(said, retry_after=wait)
            raise DeliveryDeferred(said, status=status, retry_after=wait)
        raise DeliveryRefused(said, status=status)

    def _lost(self, exc: httpx.RequestError) -> DeliveryDeferred:
        """A request that got no usable answer: the provider may or may not have the notice,
        so it is tried again later under the same idempotency key."""
        detail = str(exc).replace(self._secret.decode(errors="replace"), "***") or "no detail"
        return DeliveryDeferred(f"{masked_url(self.url)}: {type(exc).__name__} ({detail})")


def _checked_url(url: str) -> httpx.URL:
    """``url`` parsed, or InvalidDefinition saying what an acceptable one looks like."""
    expected = "expected http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidDefinition(f"{masked_url(str(url))}: not a URL ({exc}); {expected}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidDefinition(f"{masked_url(url)}: not an HTTP URL; {expected}")
    if "%" in parsed.host or (parsed.port is not None and not 0 < parsed.port < 65536):
        raise InvalidDefinition(f"{masked_url(url)}: no such host or port; {expected}")
    return parsed


class HttpSender(_HttpChannel[httpx.Client]):
    """A channel that POSTs each notice to ``url`` through one pool of connections.

    ``send`` returns when the provider answered 2xx and raises ``DeliveryRefused`` (try the
    next channel) or ``DeliveryDeferred`` (try again later) when not; see the module's text.
    ``secret`` signs each body; timeouts are in seconds. A ``Retry-After`` (at most
    ``max_retry_after``) sets ``not_before`` on ``clock``: until then ``send`` refuses at once.
    Close it, or use it as a context manager.

    >>> with HttpSender("https://hooks.example.com/notices", secret="s3cret", name="hook") as s:
    ...     s.name, s.not_before
    ('hook', None)
    """

    _client_class = httpx.Client

    def send(self, notice: Notice) -> None:
        """POST ``notice``; return once the provider accepted it, raise if it did not."""
        body, headers = self._prepare(notice)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.RequestError as exc:
            raise self._lost(exc) from exc
        self._settle(response)

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncHttpSender(_HttpChannel[httpx.AsyncClient]):
    """``HttpSender`` for asyncio: ``send`` is a coroutine, so many notices can be in flight
    on one pool of connections. Close it with ``aclose``, or use ``async with``."""

    _client_class = httpx.AsyncClient

    async def send(self, notice: Notice) -> None:
        """POST ``notice``; return once the provider accepted it, raise if it did not."""
        body, headers = self._prepare(notice)
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.RequestError as exc:
            raise self._lost(exc) from exc
        self._settle(response)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
