"""Text from case files, replies, run records and servers, made safe for where it is shown.

A reply or a case id can hold anything: an ANSI sequence that draws a fake green verdict on a terminal, a line
that starts a Markdown heading in a CI job summary, HTML that loads a remote image. Everything the harness shows
from those sources goes through one of these first.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What can open inline Markdown in a field that is never at the start of a line: emphasis, code, links and images,
# tables, strike-through; an underscore only where it is not inside a word (GFM leaves `case_pass_rate` alone).
_MARKDOWN = re.compile(r"([\\`*\[\]|~!])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def terminal(text: object) -> str:
    """`text` with every control character (ESC, CR, bell, bidi overrides, ...) written as a visible escape,
    `\\x1b`; line breaks and tabs stay."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def markdown(text: object) -> str:
    """`text` as literal inline Markdown: one line, control characters escaped, Markdown punctuation
    backslash-escaped and HTML's `<`, `>`, `&` as entities (a job summary renders both)."""
    flat = terminal(str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " "))
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), flat)


def has_control(text: str) -> bool:
    """Whether `text` holds a character `terminal` would escape (refused in identifiers)."""
    return bool(_CONTROL.search(text)) or "\n" in text or "\t" in text
