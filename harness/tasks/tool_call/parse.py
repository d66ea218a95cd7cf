"""Reply text -> calls, exactly as docs/contract.md "Replies" says. Never raises.

A block opens with three backticks and `json` (lower case), optional spaces, then a line break,
and closes at the next three backticks. An opened block that never closes is a broken call
attempt (typically a reply cut off by max_tokens): it is an invalid block, never an abstention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness import jsonl
from harness.fenced import fence, iter_blocks  # noqa: F401  (re-exported: the format's reader and writer)

Outcome = Literal["call", "malformed", "abstention"]

@dataclass(frozen=True)
class Call:
    tool: str
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "params": self.params}


@dataclass(frozen=True)
class InvalidBlock:
    index: int
    content: str
    reason: str
    decoded: bool = False  # it read as a call object, yet is no valid call (a native call of an unknown function)


@dataclass(frozen=True)
class ParsedReply:
    calls: tuple[Call, ...] = ()
    invalid: tuple[InvalidBlock, ...] = ()
    n_blocks: int = 0
    outcome: Outcome = "abstention"


def _block_to_call(content: str) -> Call | str:
    """A Call, or the reason the block is not one."""
    try:
        obj = jsonl.loads(content.strip())
    except jsonl.JsonValueError as exc:
        return f"not JSON: {str(exc)[:120]}"
    if not isinstance(obj, dict):
        return f"JSON {type(obj).__name__}, not an object"
    if not isinstance(obj.get("tool"), str):
        return "no string 'tool'"
    if not isinstance(obj.get("params"), dict):
        return "no object 'params'"
    return Call(tool=obj["tool"], params=obj["params"])


def parse_reply(text: str) -> ParsedReply:
    """Classify a reply as call / malformed / abstention and extract its valid calls."""
    if not isinstance(text, str):
        text = ""
    calls: list[Call] = []
    invalid: list[InvalidBlock] = []
    blocks = iter_blocks(text)
    for i, (content, closed) in enumerate(blocks):
        parsed = _block_to_call(content) if closed else "block never closed (no closing ```)"
        if isinstance(parsed, Call):
            calls.append(parsed)
        else:
            invalid.append(InvalidBlock(index=i, content=content, reason=parsed))
    if not blocks:
        outcome: Outcome = "abstention"
    elif invalid:
        outcome = "malformed"
    else:
        outcome = "call"
    return ParsedReply(calls=tuple(calls), invalid=tuple(invalid), n_blocks=len(blocks), outcome=outcome)
