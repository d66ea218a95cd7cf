"""Backends by name (harness.backends.registry): each is imported only when chosen, so the harness never imports
torch or an HTTP stack it does not need, and a missing extra becomes a one-line install hint."""
from __future__ import annotations

from harness.backends.base import Backend, BackendError, BackendOptions, Reply, ReplyMismatch, Request, ask, bind_replies
from harness.backends.registry import BackendSpec, create_backend, register, specs

__all__ = ["Backend", "BackendError", "BackendOptions", "BackendSpec", "Reply", "ReplyMismatch", "Request", "ask",
           "bind_replies", "create_backend", "register", "specs"]
