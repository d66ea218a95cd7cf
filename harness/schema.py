"""JSON Schema validation of untrusted schemas: the only place validators are made.

Tool schemas come from case files and tools.json, which the harness does not trust. A validator here resolves
`$ref` only inside the schema's own document (`#/$defs/...`, `#/definitions/...`, the shapes Pydantic emits) and
retrieves nothing: a reference to a URL or a file is refused when the schema is loaded (`external_refs`), and the
registry behind every validator has no retrieval, so nothing can be fetched or read even if one slipped by.
`pattern` and `patternProperties` run through the `regex` engine with a time budget per match: a pattern that
backtracks exponentially fails that value with the reason instead of hanging the run.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import regex
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry

PATTERN_BUDGET_S = 0.25  # per match; a sane pattern on a tool argument takes microseconds
REF_KEYS = ("$ref", "$dynamicRef")
NO_RETRIEVAL: Registry = Registry()  # resolves only what a schema holds itself; retrieves nothing


class SchemaRefused(ValueError):
    """A schema that may not be used as given (an external reference); the message names where."""


def _refs(schema: Any) -> list[tuple[str, str]]:
    """(JSON path, reference) of every `$ref` / `$dynamicRef`, found without recursion."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in REF_KEYS and isinstance(value, str):
                    found.append((f"{path}.{key}" if path else key, value))
                stack.append((value, f"{path}.{key}" if path else str(key)))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
    return sorted(found)


def external_refs(schema: Any) -> list[tuple[str, str]]:
    """(JSON path, reference) of every reference that points outside the schema's own document (anything but a
    `#...` fragment): a URL or a file the harness must never fetch or read."""
    return [(p, r) for p, r in _refs(schema) if not r.startswith("#")]


def check_schema(schema: Any, where: str) -> None:
    """Refuse an external reference (`where: <path>: external $ref not allowed`), then check the schema
    itself is valid draft 2020-12."""
    for path, ref in external_refs(schema):
        raise SchemaRefused(f"{where}.{path}: external $ref not allowed ({ref!r}); only references inside the "
                            "schema (#/$defs/...) are resolved")
    Draft202012Validator.check_schema(schema)
    resolver = validator(schema)._resolver
    for path, ref in local_refs(schema):
        try:
            resolver.lookup(ref)
        except Exception:  # noqa: BLE001 -- referencing's Unresolvable / PointerToNowhere
            raise SchemaRefused(f"{where}.{path}: $ref {ref!r} points to nothing in the schema") from None


def local_refs(schema: Any) -> list[tuple[str, str]]:
    """(JSON path, reference) of every `#...` reference."""
    return [(p, r) for p, r in _refs(schema) if r.startswith("#")]


def _search(pattern: str, text: str) -> bool | str:
    """Whether `pattern` finds a match in `text`, or why it could not be decided."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_BUDGET_S) is not None
    except TimeoutError:
        return f"matching {pattern!r} took longer than {PATTERN_BUDGET_S:g} s (a pattern that backtracks): not checked"
    except regex.error as exc:
        return f"pattern {pattern!r} is not a regular expression this harness can run ({exc})"


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if isinstance(found, str):
        yield ValidationError(f"{instance[:80]!r}: {found}")
    elif not found:
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
                        ) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if isinstance(found, str):
                yield ValidationError(f"property {key[:80]!r}: {found}")
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


Bounded = validators.extend(Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties})


def validator(schema: Mapping[str, Any], cls: Any = None) -> Any:
    """A validator for `schema` (Bounded, or `cls`, which must extend it) that resolves references only inside
    `schema` and fetches nothing."""
    made = (cls or Bounded)(schema, registry=NO_RETRIEVAL)
    made._resolver  # noqa: B018 -- anchor resolution at this root before any evolve() onto a subschema
    return made


def extend(**kwargs: Any) -> Any:
    """A validator class on top of Bounded (for scoring profiles that change types or drop `enum`)."""
    return validators.extend(Bounded, **kwargs)


class Subschema(Mapping[str, Any]):
    """A part of a schema (a property's schema) that keeps its root: looking it up follows local `$ref`s, so
    checks that read keywords (`type`, `enum`, `properties`) see what the reference names, and `validator()`
    validates against it with references resolved in the root document."""

    def __init__(self, root: Any, node: Mapping[str, Any]) -> None:
        self.root, self.node = root, _deref(root, node)

    def __getitem__(self, key: str) -> Any:
        value = self.node[key]
        return Subschema(self.root, value) if isinstance(value, Mapping) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.node)

    def __len__(self) -> int:
        return len(self.node)

    def validator(self) -> Any:
        return self.root.evolve(schema=self.node)


def _deref(root: Any, node: Mapping[str, Any], hops: int = 16) -> Mapping[str, Any]:
    """`node` with a local `$ref` chain followed (the referenced schema, merged under the node's own keys)."""
    seen = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#") and seen < hops:
        target = root._resolver.lookup(node["$ref"]).contents
        if not isinstance(target, Mapping):
            break
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node
