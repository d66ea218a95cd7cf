"""The backend interface: one required method, `generate`, over a whole batch of conversations.

A reply is bound to its request by the request's `key`, never by its place in a list: a backend that drops,
repeats or reorders a reply cannot make the run score one case with another's reply (`ask` checks it).
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Mapping, Sequence

from harness.backends.options import Option, flag

OnReply = Callable[["Reply"], None]


@dataclass(frozen=True)
class Request:
    """One conversation to answer: the full message list, system prompt first, and its "now"."""

    case_id: str
    messages: tuple[Mapping[str, str], ...]
    now: datetime
    # The functions, in the function-tools form, for a native request: the server (or the local chat
    # template) renders them its own way and may answer with structured tool calls.
    tools: tuple[Mapping[str, Any], ...] | None = None
    # Unique among the requests of one `generate` call (default: the case id; a repeat adds its number).
    key: str = ""
    # What a reply to it must be, for constrained decoding (a harness.grammar.Grammar, built by the task); a backend
    # that decodes freely ignores it.
    grammar: Any = None

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.case_id)

    def bind(self, reply: "Reply") -> "Reply":
        """`reply` as this request's answer."""
        return dataclasses.replace(reply, key=self.key)


@dataclass(frozen=True)
class Reply:
    """What came back for one request; `text` is None when the backend failed (see `error`)."""

    text: str | None
    latency_s: float | None = None
    usage: Mapping[str, Any] | None = None
    error: str | None = None
    truncated: bool = False  # generation stopped at the token limit, not at end of turn
    attempts: int = 1  # requests sent for this reply, retries included
    faults: tuple[str, ...] = ()  # what went wrong on the attempts before (HTTP 429, timeout, ...)
    redacted: bool = False  # the reply held a secret, which was replaced by ***
    key: str | None = None  # the key of the request it answers (Request.bind)
    constrained: bool = False  # decoded under the request's grammar (or sent to a server with it)


# The local backend's generation modes (harness.backends.local), here so the CLI can offer them without torch.
GENERATION_MODES = ("auto", "dynamic", "static", "compiled")
# How replies are decoded: the model's own choice, or only what the request's grammar allows (harness.grammar).
DECODINGS = ("free", "constrained")


class BackendError(RuntimeError):
    """A backend that cannot run at all (bad options, missing files or packages): stops the run."""


class ReplyMismatch(RuntimeError):
    """A backend answered a request it was not asked, answered one twice, or left one out: a bug in the backend,
    which crashes the run (its replies cannot be trusted to belong to their cases)."""


def bind_replies(requests: Sequence[Request], replies: Sequence["Reply"], backend: str = "backend") -> list["Reply"]:
    """The replies in the order of `requests`, each found by its key; ReplyMismatch unless every request has
    exactly one reply and every reply a request."""
    keys = [r.key for r in requests]
    if len(set(keys)) != len(keys):
        raise ValueError("two requests of one batch share a key")
    by_key: dict[str, Reply] = {}
    for reply in replies:
        if reply.key not in keys:
            raise ReplyMismatch(f"{backend} returned a reply for {reply.key!r}, which it was not asked for")
        if reply.key in by_key:
            raise ReplyMismatch(f"{backend} returned two replies for {reply.key!r}")
        by_key[reply.key] = reply
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ReplyMismatch(f"{backend} returned {len(replies)} replies for {len(requests)} requests; none for "
                            f"{', '.join(map(repr, missing[:5]))}")
    return [by_key[k] for k in keys]


def ask(backend: "Backend", requests: Sequence[Request], on_reply: OnReply | None = None) -> list["Reply"]:
    """Every caller's way to a backend's replies: `generate`, then each reply bound to its request by key (see
    bind_replies). `on_reply` sees each reply once, as it arrives, and only replies to these requests."""
    pending = {r.key for r in requests}
    seen: set[str] = set()

    def checked(reply: Reply) -> None:
        if reply.key not in pending or reply.key in seen:
            raise ReplyMismatch(f"{backend.name} reported a reply for {reply.key!r}, which it was not asked for "
                                "or had already answered")
        seen.add(reply.key)
        if on_reply is not None:
            on_reply(reply)

    return bind_replies(requests, backend.generate(requests, checked), backend.name)


class Backend(ABC):
    """A model to evaluate. Subclasses implement `generate`; everything else has a default."""

    name: ClassVar[str]
    #: whether `Reply.latency_s` is wall time this backend measured (replay's is not)
    measures_latency: ClassVar[bool] = True
    #: how many requests to hand to `generate` at once (None: all of them)
    batch_size: int | None = None
    #: whether a run shows a progress bar while it waits for this backend (not for recorded replies)
    shows_progress: ClassVar[bool] = True
    #: the options from_options reads (harness.backends.options); the registry's spec carries the same table
    OPTIONS: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def from_options(cls, name: str, options: "BackendOptions") -> "Backend":
        """The backend `--model=name` chose, built from the options its OPTIONS table declares."""
        raise NotImplementedError(f"{cls.__name__} declares no from_options: it cannot be chosen by --model")

    @abstractmethod
    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        """One reply per request, each bound to it (`request.bind(reply)`: the run matches them by key, never
        by position). Must not raise for a single failed request: return a Reply with `text=None` and `error`
        set instead, so the rest of the run goes on. Raise BackendError only when nothing further can succeed.
        `on_reply(reply)`, when given, is called as each reply is ready, so the run can record it before the
        batch ends. Callers go through `ask`, which checks the binding."""

    def fingerprint(self) -> dict[str, Any]:
        """What exactly is being evaluated (model and adapter hashes, generation settings)."""
        return {"backend": self.name}

    def describe(self) -> str:
        """One line for pytest's header."""
        return self.name

    def notes(self) -> list[str]:
        """What the user should know about how this backend runs, said once at the start (e.g. a key too short
        to be redacted)."""
        return []

    def latency_conditions(self) -> dict[str, Any]:
        """Settings under which `latency_s` was measured (concurrency, batch size): the latency gate means
        little without them."""
        return {}

    def close(self) -> None:  # noqa: B027 -- a backend with nothing to release keeps this
        """Release connections or memory."""


@dataclass
class BackendOptions:
    """The options a backend factory may read; each backend reads only what it needs."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value

    def require(self, key: str, backend: str, what: str = "") -> Any:
        """The value of option `key`; without one, an error that names its flag (and `what` it is)."""
        value = self.values.get(key)
        if value in (None, ""):
            raise BackendError(f"--model={backend} needs {flag(key)}{' ' + what if what else ''}")
        return value
