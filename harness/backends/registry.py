"""Backends by name: lazy (a backend's module, and torch or httpx with it, is imported only when chosen) and open
(a package ships a backend through the `toolcall_harness.backends` entry-point group, naming a BackendSpec).

    [project.entry-points."toolcall_harness.backends"]
    my-server = "my_package.spec:SPEC"      # SPEC = BackendSpec("my-server", "my_package.backend:MyBackend", OPTIONS)

A spec carries its options as data (harness.backends.options), so the pytest plugin can offer every backend's
flags before it knows which one the user chose, and a missing extra becomes a one-line install hint.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from harness.backends import options as opts
from harness.backends.base import BackendError, BackendOptions
from harness.backends.options import flag

if TYPE_CHECKING:
    from harness.backends.base import Backend

ENTRY_POINT_GROUP = "toolcall_harness.backends"


@dataclass(frozen=True)
class BackendSpec:
    name: str                           # --model NAME
    target: str                         # "module:Class", a Backend subclass with from_options(name, options)
    options: tuple[opts.Option, ...]    # the options it reads (flags, defaults, minimums)
    extra: str | None = None            # the pip extra that installs what its module imports
    about: str = ""

    def load(self) -> type[Backend]:
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f"pip install -e '.[{self.extra}]'" if self.extra else "reinstall the package that provides it"
            raise BackendError(f"--model={self.name} needs packages that are not installed ({exc.name}): {hint}") from exc
        return getattr(module, attr)

    def create(self, options: BackendOptions) -> Backend:
        return self.load().from_options(self.name, options)


BUILTIN: tuple[BackendSpec, ...] = (
    BackendSpec("replay", "harness.backends.replay:ReplayBackend", opts.REPLAY, about="recorded replies"),
    BackendSpec("local-base", "harness.backends.local:LocalBackend", opts.LOCAL, "local", "a model on this machine"),
    BackendSpec("local-adapter", "harness.backends.local:LocalBackend", opts.LOCAL, "local",
                "a LoRA adapter on its base, on this machine"),
    BackendSpec("cloudflare-base", "harness.backends.remote:CloudflareBackend", opts.CLOUDFLARE,
                about="a Workers AI model"),
    BackendSpec("cloudflare-lora", "harness.backends.remote:CloudflareBackend", opts.CLOUDFLARE,
                about="a Workers AI finetune on its model"),
    BackendSpec("openai", "harness.backends.remote:OpenAIBackend", opts.OPENAI,
                about="any OpenAI-compatible server (vLLM, llama.cpp, TGI, transformers serve)"),
)


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[BackendSpec, ...]:
    """Specs that installed packages register (a broken entry point is skipped: it must not break every run)."""
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception:  # a third party's import error: skipped here, so only choosing it fails
            continue
        if isinstance(spec, BackendSpec):
            found.append(spec)
    return tuple(found)


# Specs registered at run time (a test's fake backend); the same as an entry point, without a package
EXTRA: dict[str, BackendSpec] = {}


def specs() -> dict[str, BackendSpec]:
    """Every backend by name: the built-in ones, then installed packages', then registered ones."""
    out = {s.name: s for s in BUILTIN}
    for spec in (*_installed(), *EXTRA.values()):
        out.setdefault(spec.name, spec)  # a package cannot take over a built-in name
    return out


def register(spec: BackendSpec) -> None:
    EXTRA[spec.name] = spec


def all_options() -> list[opts.Option]:
    """Every option any backend reads, once each."""
    return opts.merge(s.options for s in specs().values())


def create_backend(name: str, options: BackendOptions) -> Backend:
    known = specs()
    if name not in known:
        raise BackendError(f"unknown --model {name!r}; known: {', '.join(sorted(known))}")
    spec = known[name]
    if options.get("decoding") == "constrained" and "decoding" not in {o.name for o in spec.options}:
        # a backend that cannot enforce the grammar must not run a "constrained" evaluation that is really free
        able = sorted(n for n, s in known.items() if "decoding" in {o.name for o in s.options})
        raise BackendError(f"--model={name} cannot decode under the reply grammar ({flag('decoding')} constrained): "
                           f"{', '.join(able)} can (Workers AI's JSON mode would force a call on every case, closing "
                           "the abstention branch)")
    return spec.create(options)
