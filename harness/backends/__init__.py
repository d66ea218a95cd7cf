"""Backends by name. Each is a factory imported only when chosen, so the harness never imports torch
or an HTTP stack it does not need, and a missing extra becomes a one-line install hint."""
from __future__ import annotations

import importlib

from harness.backends.base import Backend, BackendError, BackendOptions, Reply, ReplyMismatch, Request, ask, bind_replies

# name -> (module, factory, pip extra that provides its packages)
REGISTRY: dict[str, tuple[str, str, str | None]] = {
    "replay": ("harness.backends.replay", "ReplayBackend", None),
    "local-base": ("harness.backends.local", "LocalBackend", "local"),
    "local-adapter": ("harness.backends.local", "LocalBackend", "local"),
    "cloudflare-base": ("harness.backends.remote", "CloudflareBackend", None),
    "cloudflare-lora": ("harness.backends.remote", "CloudflareBackend", None),
    "openai": ("harness.backends.remote", "OpenAIBackend", None),
}


def create_backend(name: str, options: BackendOptions) -> Backend:
    if name not in REGISTRY:
        raise BackendError(f"unknown --model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    module_name, factory, extra = REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install -e '.[{extra}]'" if extra else "reinstall the package"
        raise BackendError(f"--model={name} needs packages that are not installed ({exc.name}): {hint}") from exc
    return getattr(module, factory).from_options(name, options)


__all__ = ["Backend", "BackendError", "BackendOptions", "Reply", "ReplyMismatch", "Request", "REGISTRY", "ask",
           "bind_replies", "create_backend"]
