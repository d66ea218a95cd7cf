"""The shared HTTP engine for remote backends: bounded concurrency, a client-side rate limit,
classified retries with backoff, and secrets that never reach a message.

A provider (Cloudflare, an OpenAI-compatible server) subclasses `HttpBackend` and says only what
differs: the URL, the request body, how to read a reply, and which failures can heal.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import httpx

from harness import jsonl
from harness.backends.base import Backend, BackendError, OnReply, Reply, Request
from harness.backends.options import flag

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
FIRST_FAILURES_TO_STOP = 3  # identical failures, before any success, that stop a run


class Secret:
    """A credential. Its repr and str are masked, so it cannot leak through tracebacks, locals or exception
    args; `reveal()` is the one way to the value, used only where a header or URL is built."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled")

    @property
    def short(self) -> bool:
        """Too short to be a real credential (a dummy key for a local server): never searched for in replies."""
        return 0 < len(self._value) < SHORT_SECRET


SECRET_RUN = 6  # this many characters of a secret in a row are a leak: a cut-off token still identifies it
SHORT_SECRET = 8  # a value shorter than this is no credential: substring redaction would corrupt replies


def header_safe(value: str) -> bool:
    """Whether `value` can go into an HTTP header as it is: printable ASCII, no spaces or control characters."""
    return all(33 <= ord(c) <= 126 for c in value)


def env_secret(var: str, who: str, required: bool = True) -> Secret:
    """A credential from the environment. One that cannot be sent as a header (a non-ASCII character, a space,
    a line break: a copy-paste accident) is refused here, named by its variable and never echoed, before any
    request: httpx would fail building the header with the whole value in its exception."""
    value = os.environ.get(var, "")
    if required and not value:
        raise BackendError(f"{who} needs the environment variable {var}")
    if value and not header_safe(value):
        raise BackendError(f"{who}: the environment variable {var} holds a character that cannot go into an HTTP "
                           "header (non-ASCII, a space or a control character); set it to the token exactly (its "
                           "value is not shown)")
    return Secret(value)


def public_url(url: str) -> str:
    """`url` as it may be printed or recorded: a user name and password in it become `user:***@`."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/@?#]*)@", lambda m: f"{m.group(1)}{m.group(2).split(':')[0]}:***@",
                  url)


def check_base_url(url: str, flag: str, *, own_auth: bool) -> Secret:
    """Refuse a base URL that cannot work (no http(s) scheme, no host, a port outside 1..65535) with the flag's
    name, before any request; and one with a user name or password in it when the API's own auth header
    (`own_auth`) would be replaced by it (httpx sends Basic auth from the URL instead). Returns the URL's password
    as a Secret (empty without one), so that redaction covers it."""
    shown = public_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BackendError(f"{flag} {shown}: not a valid URL ({public_url(str(exc))})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BackendError(f"{flag} {shown}: give an http:// or https:// URL with a host")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise BackendError(f"{flag} {shown}: invalid port {parsed.port} (1..65535)")
    if parsed.userinfo and own_auth:
        raise BackendError(f"{flag} {shown}: a user name or password in the URL would replace the API token's "
                           "Authorization header; leave them out")
    return Secret(parsed.password or "")


def redact_secrets(text: str, secrets: Sequence[Secret], reply: bool = False) -> str:
    """Every run of SECRET_RUN or more characters of any secret, in any place of `text`, becomes `***`
    (a secret shorter than that only whole). Runs are found through each secret's windows of that length,
    so a prefix, a suffix or a piece of a token cut off by some length limit is caught too. In a reply
    (`reply=True`) a short secret (a dummy key like `k`) is left alone: it is no credential, and replacing every
    `k` would change what is scored; elsewhere it is replaced only where it stands as a whole word."""
    marked = [False] * len(text)
    for secret in secrets:
        value = secret.reveal()
        if not value:
            continue
        if secret.short:
            if not reply:
                for m in re.finditer(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text):
                    marked[m.start():m.end()] = [True] * (m.end() - m.start())
            continue
        width = min(SECRET_RUN, len(value))
        for window in {value[i:i + width] for i in range(len(value) - width + 1)}:
            start = text.find(window)
            while start >= 0:
                marked[start:start + width] = [True] * width
                start = text.find(window, start + 1)
    if not any(marked):
        return text
    out, i = [], 0
    while i < len(text):
        if marked[i]:
            while i < len(text) and marked[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class RetryPolicy:
    """Defaults in one place. Delay before retry k (1-based): Retry-After when the server sends it
    (capped), else full-jitter exponential backoff: uniform(0, min(cap, base * 2**(k-1)))."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    retry_after_cap_s: float = 60.0
    timeout_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified: retry it, give up on this case, or stop the whole run."""

    kind: str  # "retry" | "case" | "fatal"
    message: str
    retry_after: float | None = None

    @property
    def kind_of_fault(self) -> str:
        """A short name for the summary's fault counts: `HTTP 429`, `timeout`, `connection error`, ..."""
        head = self.message.split(":")[0].split(" (")[0]
        return head if head.startswith(("HTTP ", "Cloudflare error ")) else head.split(" after")[0]


class FatalBackendError(BackendError):
    """An error that cannot heal by retrying (bad token, unknown model...): the run stops."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date); None when absent or unreadable
    (normal backoff then). Never raises: it runs with the response in the caller's frame."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_http(status: int, body: Any, headers: httpx.Headers) -> Failure:
    """The generic table: 408/409/429/5xx heal, 401/403 never do, other 4xx fail this request only."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    text = body if isinstance(body, str) else str(body)
    message = f"HTTP {status}: {text[:300]}"
    if status in RETRY_STATUS or status >= 500:
        return Failure("retry", message, retry_after)
    if status in (401, 403):
        return Failure("fatal", f"{message} (check the API token and its permissions)")
    return Failure("case", message)


def _read_body(response: httpx.Response, redact: Callable[[str], str]) -> tuple[Any, bool]:
    """The response body as strict JSON (or text) with every secret already redacted, so that whatever later
    cuts, prints or raises with it cannot leak one; and whether anything was redacted. A body that is not strict
    JSON (NaN, nesting past harness.jsonl's limit, a huge integer) is read as text: no reply in it. Reading can
    still fail (a body sent as gzip that is not): the caller makes that a failed attempt."""
    changed = False

    def clean(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, str):
            out = redact(value)
            changed = changed or out != value
            return out
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {clean(str(k)): clean(v) for k, v in value.items()}
        return value

    text = response.text
    try:
        body: Any = jsonl.loads(text, jsonl.RECORD_DEPTH)
    except ValueError:
        body = text
    return clean(body), changed


def _classify_safely(classify: Callable[[int, Any, httpx.Headers], Failure], response: httpx.Response,
                     body: Any) -> Failure:
    """A classifier that trips over an odd body must not raise from the request path."""
    try:
        return classify(response.status_code, body, response.headers)
    except Exception as exc:  # noqa: BLE001 -- a reply we cannot read is a failed attempt, not a crash
        return Failure("retry" if response.status_code >= 500 else "case",
                       f"HTTP {response.status_code}: unreadable error reply ({type(exc).__name__})")


def send_failure(exc: Exception, timeout_s: float) -> Failure:
    """What an exception raised while sending a request or reading its response means for that attempt:
    timeouts, lost connections and bodies that do not decode (a gzip header on a body that is not) may heal;
    anything else fails this request only, named by its type. It never escapes: an exception that escaped would
    leave its request without a reply."""
    if isinstance(exc, httpx.TimeoutException):
        return Failure("retry", f"timeout after {timeout_s:g} s ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return Failure("retry", f"connection error: {type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return Failure("retry", f"undecodable response body ({type(exc).__name__}: {str(exc)[:200]})")
    return Failure("case", f"request failed: {type(exc).__name__}: {str(exc)[:300]}")


class RequestFailed(BackendError):
    """A request that still failed after its retries (or could not be retried)."""


def request_sync(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    classify: Callable[[int, Any, httpx.Headers], Failure],
    redact: Callable[[str], str],
    retry: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
    **kwargs: Any,
) -> Any:
    """One request with the same retry rules as the async engine; returns the parsed JSON body.
    Raises FatalBackendError (cannot heal) or RequestFailed (retries spent), messages redacted."""
    rng = rng or random.Random(0)
    last = "no attempt made"
    for attempt in range(1, retry.max_attempts + 1):
        try:
            response = client.request(method, url, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- classified: every failure to get a response is one attempt's
            failure = send_failure(exc, retry.timeout_s)
        else:
            body, _ = _read_body(response, redact)
            if response.is_success and not (isinstance(body, dict) and body.get("success") is False):
                return body
            failure = _classify_safely(classify, response, body)
        last = failure.message
        if failure.kind == "fatal":
            raise FatalBackendError(redact(failure.message))
        if failure.kind == "case" or attempt == retry.max_attempts:
            break
        time.sleep(retry.delay(attempt, failure.retry_after, rng))
    raise RequestFailed(redact(f"{method} {url}: {last} (after {attempt} attempt{'s' if attempt > 1 else ''})"))


class RateLimiter:
    """At most `per_minute` request starts in any 60-second window (the provider's own rule)."""

    def __init__(self, per_minute: int | None, window_s: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self.starts: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.per_minute:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.starts and now - self.starts[0] >= self.window_s:
                    self.starts.popleft()
                if len(self.starts) < self.per_minute:
                    self.starts.append(now)
                    return
                await asyncio.sleep(self.window_s - (now - self.starts[0]))


class HttpBackend(Backend):
    """Remote generation over HTTP. Subclasses implement `endpoint`, `payload`, `extract` and may
    refine `classify`; retries, concurrency, rate limiting and redaction are shared."""

    name: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        secrets: Sequence[Secret] = (),
        concurrency: int = 4,
        requests_per_minute: int | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 0,
    ) -> None:
        self.secrets = [s for s in secrets if s]
        self.concurrency = max(1, concurrency)
        self.requests_per_minute = requests_per_minute
        self.retry = retry
        self.transport = transport
        self.rng = random.Random(seed)
        self.retries = 0  # retried attempts over the backend's life, for benchmarks and reports
        self._answered = False  # has any request succeeded yet
        self._first_failures: list[str] = []

    # -- what a provider says --------------------------------------------------------------------
    def endpoint(self, request: Request) -> str:
        raise NotImplementedError

    def payload(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {}

    def extract(self, body: Any) -> Reply:
        """The reply (text, usage, truncated) in a successful response body; raise ValueError when it has none."""
        raise NotImplementedError

    def classify(self, status: int, body: Any, headers: httpx.Headers) -> Failure:
        """Classify a non-2xx response (or a 2xx whose body reports failure)."""
        return classify_http(status, body, headers)

    # -- the engine ------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return redact_secrets(text, self.secrets)

    def notes(self) -> list[str]:
        return [f"a credential of {len(s.reveal())} character(s) is too short to be treated as a secret: replies are "
                "not searched for it (error messages still are)" for s in self.secrets if s.short]

    def redact_reply(self, text: str) -> str:
        """Redaction for what the model said: a dummy key too short to be a secret is not searched for."""
        return redact_secrets(text, self.secrets, reply=True)

    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        return asyncio.run(self._generate_all(requests, on_reply))

    async def _generate_all(self, requests: Sequence[Request], on_reply: OnReply | None) -> list[Reply]:
        replies: dict[str, Reply] = {}
        limiter = RateLimiter(self.requests_per_minute)
        gate = asyncio.Semaphore(self.concurrency)
        fatal: list[FatalBackendError] = []
        tasks: list[asyncio.Task[None]] = []
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(
            timeout=self.retry.timeout_s, limits=limits, transport=self.transport, headers=self.headers()
        ) as client:

            async def one(request: Request) -> None:
                async with gate:
                    try:
                        reply = request.bind(await self._ask(client, limiter, request))
                    except FatalBackendError as exc:
                        fatal.append(exc)
                    except Exception as exc:  # noqa: BLE001 -- anything else is this case's failure, not a shift
                        reply = request.bind(Reply(text=None, error=self.redact(
                            f"{type(exc).__name__} while asking: {str(exc)[:300]}")))
                    if not fatal:
                        replies[request.key] = reply
                        try:
                            self._watch_first_failures(reply)
                        except FatalBackendError as exc:
                            fatal.append(exc)
                    if fatal:
                        # Nothing more can succeed: stop every request in flight or backing off, now.
                        for task in tasks:
                            if task is not asyncio.current_task():
                                task.cancel()
                        return
                if on_reply is not None:
                    on_reply(reply)

            tasks.extend(asyncio.create_task(one(r)) for r in requests)
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        if fatal:
            raise fatal[0]
        # An exception outside the request (in on_reply: the run's own recording) is not lost in gather.
        raised = next((o for o in outcomes if isinstance(o, BaseException)
                       and not isinstance(o, asyncio.CancelledError)), None)
        if raised is not None:
            raise raised
        return [replies[r.key] for r in requests if r.key in replies]

    def latency_conditions(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency,
                "note": "from sending the request to the reply; with concurrency > 1 a server that answers one "
                        f"request at a time adds its queue: measure with {flag('concurrency')} 1 for service time"}

    def _watch_first_failures(self, reply: Reply) -> None:
        """Stop the run when its first requests all failed the same way (a wrong model name, a server that is
        down): every later case would fail alike, and a report of N backend errors helps no one."""
        if self._answered:
            return
        if reply.text is not None:
            self._answered = True
            return
        self._first_failures.append(reply.error or "")
        shapes = {re.sub(r" after \d+ attempts?$", "", e) for e in self._first_failures}
        if len(self._first_failures) >= FIRST_FAILURES_TO_STOP and len(shapes) == 1:
            raise FatalBackendError(f"{self.name}: the first {len(self._first_failures)} requests all failed the "
                                    f"same way, stopping: {reply.error}")

    async def _ask(self, client: httpx.AsyncClient, limiter: RateLimiter, request: Request) -> Reply:
        last = "no attempt made"
        faults: list[str] = []
        for attempt in range(1, self.retry.max_attempts + 1):
            await limiter.wait()
            started = time.perf_counter()  # latency starts when the request is sent, not in our own queue
            failure = await self._attempt(client, request)
            if isinstance(failure, Reply):
                return dataclasses.replace(failure, latency_s=time.perf_counter() - started, attempts=attempt,
                                           faults=tuple(faults))
            last = failure.message
            faults.append(failure.kind_of_fault)
            if failure.kind == "fatal":
                raise FatalBackendError(self.redact(f"{self.name}: {failure.message}"))
            if failure.kind == "case" or attempt == self.retry.max_attempts:
                break
            self.retries += 1
            await asyncio.sleep(self.retry.delay(attempt, failure.retry_after, self.rng))
        tries = f" after {attempt} attempt{'s' if attempt > 1 else ''}"
        return Reply(text=None, latency_s=None, error=self.redact(f"{last}{tries}"), attempts=attempt,
                     faults=tuple(faults))

    async def _attempt(self, client: httpx.AsyncClient, request: Request) -> Reply | Failure:
        """One try. Never raises for what the server sent: the body is redacted as soon as it is read, and
        a reply that cannot be read becomes a Failure (so no traceback ever holds a response body)."""
        try:
            response = await client.post(self.endpoint(request), json=self.payload(request))
        except Exception as exc:  # noqa: BLE001 -- classified: every failure to get a response is one attempt's
            return send_failure(exc, self.retry.timeout_s)
        body, redacted = _read_body(response, self.redact_reply if response.is_success else self.redact)
        if response.is_success and not (isinstance(body, dict) and body.get("success") is False):
            try:
                reply = self.extract(body)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                # A 2xx with no reply in it (a proxy's page, `choices: []`): a transport fault, retried like a 5xx.
                return Failure("retry", f"HTTP {response.status_code} without a readable reply ({type(exc).__name__})")
            return dataclasses.replace(reply, redacted=redacted)
        return _classify_safely(self.classify, response, body)
