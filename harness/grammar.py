"""Grammars for constrained decoding, in llguidance's Lark-like syntax (https://github.com/guidance-ai/llguidance).

Why llguidance: it embeds a JSON Schema inside a grammar (`%json {...}`), its lexemes take intersection and
negation (`&`, `~`), which is what "plain text that opens no ```json block" needs to stay exact, and it computes
a token mask on the CPU in microseconds for grammars of this size (benchmarks/constrained_decoding.py measures it).
XGrammar and outlines-core take a JSON Schema or an EBNF, but neither can say "any text without this substring" as
one lexeme, so the abstention branch would have to be narrowed (no backticks at all) to stay deterministic. On the
call schema alone (benchmarks/grammar_libraries.py) XGrammar masks faster and compiles slower; outlines-core cannot
build the fenced format's no-``` string patterns at all.

The builders are pure: they return the grammar's text. A schema the library cannot compile is never changed
silently: that part is left unconstrained (any JSON object) and named in `Grammar.unconstrained`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

LIBRARY = "llguidance"
# The contract's opener of a fenced block (harness.fenced): three backticks, json, optional spaces, a line break.
_OPENER = r"```json *\r?\n"


@dataclass(frozen=True)
class Grammar:
    """A grammar's text and the parts of it left unconstrained (each `name: why`)."""

    text: str
    unconstrained: tuple[str, ...] = field(default=())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def library_version(package: str = LIBRARY) -> str | None:
    """The installed version of llguidance, or of another grammar library (None: not installed)."""
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # noqa: BLE001  (PackageNotFoundError and kin)
        return None


def compile_problem(grammar_text: str) -> str | None:
    """Why llguidance refuses this grammar (None: it compiles, or llguidance is not installed: then nothing can
    decode under it, and the backend that would says so)."""
    try:
        import llguidance
    except ImportError:
        return None
    error = llguidance.LLMatcher.validate_grammar(grammar_text)
    return error or None


def _json_rule(schema: Mapping[str, Any]) -> str:
    return "%json " + json.dumps(schema, ensure_ascii=True)  # key order kept: llguidance writes properties in it


# Inside a fenced block the contract's parser closes the block at the first three backticks (harness.fenced), so a
# string holding ``` cannot be written in the fenced format at all: its strings are held to this (the format's
# limit, not a change to the tool's schema).
NO_FENCE = "^([^`]|`[^`]|``[^`])*`{0,2}$"


def no_fence(schema: Any) -> Any:
    """`schema` with every free-text string (no pattern, enum or const of its own) kept free of ```."""
    if isinstance(schema, list):
        return [no_fence(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    nested = ("items", "additionalProperties", "not", "if", "then", "else", "anyOf", "oneOf", "allOf", "prefixItems")
    out = {k: no_fence(v) if k in nested else v for k, v in schema.items()}
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(schema.get(key), Mapping):
            out[key] = {name: no_fence(sub) for name, sub in schema[key].items()}
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not any(k in schema for k in ("pattern", "enum", "const")):
        out["pattern"] = NO_FENCE
    return out


def _checked(name: str, schema: Mapping[str, Any], notes: list[str]) -> Mapping[str, Any]:
    """`schema` when llguidance compiles it exactly; else an unconstrained object, with the reason noted."""
    problem = compile_problem(f"start: {_json_rule(schema)}\n")
    if problem is None:
        return schema
    notes.append(f"{name}: {problem.splitlines()[0][:200]}")
    return {"type": "object"}


def call_schema(tools: Sequence[Mapping[str, Any]], notes: list[str], name_key: str = "tool",
                params_key: str = "params", fenced: bool = True) -> dict[str, Any]:
    """One call of the catalogue (function-tools form in): {name_key: <a tool's name>, params_key: <its parameter
    schema>}, the fenced format's {"tool", "params"} or the native {"name", "parameters"}."""
    options = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object"}
        params = _checked(fn["name"], no_fence(params) if fenced else params, notes)
        options.append({"type": "object", "properties": {name_key: {"const": fn["name"]}, params_key: params},
                        "required": [name_key, params_key], "additionalProperties": False})
    return {"oneOf": options} if options else {"type": "object"}


def _fenced(start: str, rule: str, schema: Mapping[str, Any]) -> str:
    """A grammar of fenced json blocks: `start` over TEXT (no opener inside), `open` (any text up to and with the
    opener, matched lazily), CLOSE, and `rule` holding a value of `schema`."""
    return "\n".join([
        f"start: {start}",
        f"TEXT: /(?s:.*)/ & ~/(?s:.*{_OPENER}.*)/",
        "open[lazy]: /(?s:.*?)```json\\n/",
        'CLOSE: "\\n```"',
        f"{rule}: {_json_rule(schema)}",
        "",
    ])


def fenced_calls(tools: Sequence[Mapping[str, Any]]) -> Grammar:
    """The fenced reply format: plain text that opens no ```json block (an abstention), or text and one or more
    fenced blocks, each one valid call of the catalogue, with text between and after them."""
    notes: list[str] = []
    return Grammar(_fenced("TEXT | (open call CLOSE)+ TEXT?", "call", call_schema(tools, notes)), tuple(notes))


def native_calls(tools: Sequence[Mapping[str, Any]]) -> Grammar:
    """The Llama 3.x native format: plain text that does not open with `{` or `[` (an abstention), or one call
    `{"name", "parameters"}` or a list of them."""
    notes: list[str] = []
    one = call_schema(tools, notes, "name", "parameters", fenced=False)
    text = "\n".join([
        "start: TEXT | call",
        r"TEXT: /(?s:\s*)/ | /(?s:\s*[^\s{\[].*)/",
        f"call: {_json_rule({'anyOf': [one, {'type': 'array', 'items': one, 'minItems': 1}]})}",
        "",
    ])
    return Grammar(text, tuple(notes))


def fenced_json(schema: Mapping[str, Any], name: str = "reply") -> Grammar:
    """One fenced json block holding a value of `schema` (the program task: no abstention branch), text around."""
    notes: list[str] = []
    checked = _checked(name, no_fence(schema), notes)
    return Grammar(_fenced("open value CLOSE TEXT?", "value", checked), tuple(notes))
