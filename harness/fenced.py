"""Fenced json blocks (```json ... ```), the contract's reply format: reading them out of text and writing one.
Both tasks use it (tool calls, and the program task's JSON program). Never raises."""
from __future__ import annotations

import json
import re
from typing import Any

_OPEN = re.compile(r"```json *\r?\n")
_FENCE = "```"


def fence(value: Any) -> str:
    """`value` as one fenced json block, as iter_blocks reads it back (the writer of the format it parses)."""
    return "```json\n" + json.dumps(value, ensure_ascii=False) + "\n```"


def iter_blocks(text: str) -> list[tuple[str, bool]]:
    """The contents of the fenced json blocks, in order, each with whether it was closed."""
    blocks: list[tuple[str, bool]] = []
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            return blocks
        end = text.find(_FENCE, m.end())
        if end < 0:
            blocks.append((text[m.end():], False))
            return blocks
        blocks.append((text[m.end():end], True))
        pos = end + len(_FENCE)
