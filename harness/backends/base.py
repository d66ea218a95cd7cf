"""The backend interface: one required method, `generate`, over a whole batch of conversations."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Mapping, Sequence

OnReply = Callable[[int, "Reply"], None]


@dataclass(frozen=True)
class Request:
    """One conversation to answer: the full message list, system prompt first, and its "now"."""

    case_id: str
    messages: tuple[Mapping[str, str], ...]
    now: datetime
    # The functions, in the function-tools form, for a native request: the server (or the local chat
    # template) renders them its own way and may answer with structured tool calls.
    tools: tuple[Mapping[str, Any], ...] | None = None


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


# The local backend's generation modes (harness.backends.local), here so the CLI can offer them without torch.
GENERATION_MODES = ("auto", "dynamic", "static", "compiled")


class BackendError(RuntimeError):
    """A backend that cannot run at all (bad options, missing files or packages): stops the run."""


class Backend(ABC):
    """A model to evaluate. Subclasses implement `generate`; everything else has a default."""

    name: ClassVar[str]
    #: whether `Reply.latency_s` is wall time this backend measured (replay's is not)
    measures_latency: ClassVar[bool] = True
    #: how many requests to hand to `generate` at once (None: all of them)
    batch_size: int | None = None
    #: whether a run shows a progress bar while it waits for this backend (not for recorded replies)
    shows_progress: ClassVar[bool] = True

    @abstractmethod
    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        """One reply per request, in order. Must not raise for a single failed request: return
        a Reply with `text=None` and `error` set instead, so the rest of the run goes on. Raise
        BackendError only when nothing further can succeed. `on_reply(i, reply)`, when given, is
        called as each reply is ready, so the run can record it before the batch ends."""

    def fingerprint(self) -> dict[str, Any]:
        """What exactly is being evaluated (model and adapter hashes, generation settings)."""
        return {"backend": self.name}

    def describe(self) -> str:
        """One line for pytest's header."""
        return self.name

    def latency_conditions(self) -> dict[str, Any]:
        """Settings under which `latency_s` was measured (concurrency, batch size): the latency gate means
        little without them."""
        return {}

    def close(self) -> None:
        """Release connections or memory."""


@dataclass
class BackendOptions:
    """The options a backend factory may read; each backend reads only what it needs."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value

    def require(self, key: str, flag: str, backend: str) -> Any:
        value = self.values.get(key)
        if value in (None, ""):
            raise BackendError(f"--model={backend} needs {flag}")
        return value
