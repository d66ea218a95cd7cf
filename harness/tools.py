"""The tool catalogue (tools.json): the one source of tool names and param schemas.

The harness, the training data and the system prompt all read the catalogue through here, so
they cannot disagree about which tools exist or what their params look like.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from jsonschema import Draft202012Validator

DEFAULT_TOOLS_PATH = Path(str(resources.files("harness") / "spec" / "tools.json"))


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    params_schema: Mapping[str, Any]

    @cached_property
    def validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.params_schema)

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(self.params_schema.get("properties", {}))

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.params_schema.get("required", ()))

    def schema_errors(self, params: Any) -> list[str]:
        """Every JSON Schema violation of `params`, as short readable strings (empty when valid)."""
        errors = sorted(self.validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        return [_describe(e) for e in errors]


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


@dataclass(frozen=True)
class Catalogue:
    tools: tuple[Tool, ...]
    description: str = ""
    source: str = field(default="", compare=False)

    def __contains__(self, name: object) -> bool:
        return any(t.name == name for t in self.tools)

    def get(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and check a tools.json; each tool's params must itself be a valid draft 2020-12 schema.
    Cached per path: checking the schemas is slow and the catalogue never changes within a process."""
    return _load_catalogue(Path(path).resolve() if path else DEFAULT_TOOLS_PATH)


@lru_cache(maxsize=8)
def _load_catalogue(path: Path) -> Catalogue:
    raw = json.loads(path.read_text(encoding="utf-8"))
    tools = []
    for i, entry in enumerate(raw.get("tools", [])):
        try:
            name, summary, params = entry["name"], entry["summary"], entry["params"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: tools[{i}] lacks {exc}; each tool needs name, summary, params") from exc
        Draft202012Validator.check_schema(params)
        tools.append(Tool(name=name, summary=summary, params_schema=params))
    if not tools:
        raise ValueError(f"{path}: no tools under 'tools'")
    return Catalogue(tools=tuple(tools), description=raw.get("description", ""), source=str(path))
