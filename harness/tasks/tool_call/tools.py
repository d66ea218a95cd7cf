"""The tool catalogue: the one source of tool names and param schemas.

The harness, the training data and the system prompt all read the catalogue through here, so
they cannot disagree about which tools exist or what their params look like. On disk a catalogue is
the OpenAI function-tools list that vLLM, Workers AI function calling, llama.cpp and Hugging Face
chat templates (`apply_chat_template(tools=...)`) take as is:
`[{"type": "function", "function": {"name", "description", "parameters": <JSON Schema>}}]`.
The older `{"tools": [{"name", "summary", "params"}]}` form is read too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from jsonschema import Draft202012Validator

from harness import schema as jschema

# JSON Schema counts 10.0 as an integer; a checker that reads the literal (BFCL's) does not.
_STRICT_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))


def _validator_class(strict_integers: bool, enums: bool) -> Any:
    """Draft 2020-12 with bounded patterns (harness.schema), optionally with integers read literally and/or
    `enum` not enforced (BFCL checks values against its answer lists, never against the schema's enum)."""
    if not strict_integers and enums:
        return jschema.Bounded
    return jschema.extend(
        validators={} if enums else {"enum": lambda *_: None},
        type_checker=_STRICT_TYPES if strict_integers else Draft202012Validator.TYPE_CHECKER,
    )


VALIDATOR_CLASSES = {(s, e): _validator_class(s, e) for s in (False, True) for e in (False, True)}

DEFAULT_TOOLS_PATH = Path(str(resources.files("harness") / "spec" / "tools.json"))


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    params_schema: Mapping[str, Any]

    @cached_property
    def _validators(self) -> dict[tuple[bool, bool], Any]:
        """One compiled validator per (strict_integers, enums), made on first use."""
        return {}

    def validator(self, strict_integers: bool = False, enums: bool = True) -> Draft202012Validator:
        key = (strict_integers, enums)
        if key not in self._validators:
            self._validators[key] = jschema.validator(self.params_schema, VALIDATOR_CLASSES[key])
        return self._validators[key]

    def param_schema(self, name: str) -> jschema.Subschema:
        """One param's schema with its root kept (local `$ref`s followed), for checks that read its keywords."""
        return jschema.Subschema(self.validator(), self.params_schema["properties"][name])

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(self.params_schema.get("properties", {}))

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.params_schema.get("required", ()))

    def schema_errors(self, params: Any, strict_integers: bool = False, enums: bool = True) -> list[str]:
        """Every JSON Schema violation of `params`, as short readable strings (empty when valid);
        `strict_integers`: an integer written with a fraction (10.0) is not one; `enums`: enforce `enum`."""
        errors = sorted(self.validator(strict_integers, enums).iter_errors(params), key=lambda e: list(e.absolute_path))
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

    def to_function_tools(self) -> list[dict[str, Any]]:
        """The catalogue in the OpenAI function-tools form (what it is on disk, and what servers take)."""
        return [{"type": "function", "function": {"name": t.name, "description": t.summary,
                                                  "parameters": dict(t.params_schema)}} for t in self.tools]


def load_catalogue(path: str | Path) -> Catalogue:
    """Read and check a tools.json; each tool's params must itself be a valid draft 2020-12 schema.
    Cached per path: checking the schemas is slow and the catalogue never changes within a process.
    There is no default here: which catalogue a run uses is decided once, by `harness.suite`."""
    return _load_catalogue(Path(path).resolve())


@lru_cache(maxsize=8)
def _load_catalogue(path: Path) -> Catalogue:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the tool catalogue: {exc}") from exc
    return catalogue_from_json(raw, str(path))


def catalogue_from_json(raw: Any, source: str) -> Catalogue:
    """A Catalogue from the function-tools list (or the older {"tools": [...]} form). Each tool's parameters
    must be a valid draft 2020-12 schema, and a name may appear once: a second definition of the same name
    would make the catalogue say two things about one tool."""
    legacy = isinstance(raw, dict)
    entries = raw.get("tools", []) if legacy else raw
    if not isinstance(entries, list):
        raise ValueError(f"{source}: a catalogue is a list of {{\"type\": \"function\", \"function\": {{...}}}}")
    tools: list[Tool] = []
    for i, entry in enumerate(entries):
        try:
            if legacy:
                name, summary, params = entry["name"], entry["summary"], entry["params"]
            else:
                fn = entry["function"]
                name, summary, params = fn["name"], fn.get("description", ""), fn.get("parameters", {"type": "object"})
        except (KeyError, TypeError) as exc:
            shape = "name, summary, params" if legacy else '{"type": "function", "function": {name, description, parameters}}'
            raise ValueError(f"{source}: tools[{i}] lacks {exc}; each tool needs {shape}") from exc
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: tools[{i}]: the name must be a non-empty string")
        if any(t.name == name for t in tools):
            raise ValueError(f"{source}: tools[{i}]: {name!r} is defined twice; a name may appear once")
        try:
            jschema.check_schema(params, f"tools[{i}].function.parameters" if not legacy else f"tools[{i}].params")
        except jschema.SchemaRefused as exc:
            raise ValueError(f"{source}: {exc}") from None
        tools.append(Tool(name=name, summary=str(summary), params_schema=params))
    if not tools:
        raise ValueError(f"{source}: no tools in the catalogue")
    return Catalogue(tools=tuple(tools), description=raw.get("description", "") if legacy else "", source=source)
