"""Scoring profiles: the few rules on which public checkers differ from this project's contract. Pure.

The `default` profile is docs/contract.md. A named profile changes only what it lists, and its figures are
reported beside the default ones (summary `profiles`), never instead of them:

- `bfcl`, the Berkeley Function-Calling Leaderboard's AST checker as its documentation and code describe it:
  strings (alone, in lists and in objects) are compared after removing spaces and `,./-_*^`, lower-casing,
  and reading `'` as `"`; an `integer` parameter takes only a number written without a fraction or exponent
  (`10.0` is not an integer there); a schema's `enum` is not enforced (BFCL checks values only against its
  answer lists); and on a case expecting no call, a reply whose call attempt does not
  decode (not JSON, not a call object) counts as no call, while a decoded call of any function still fails.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.tasks.tool_call.matchers import Fold, trim_casefold

_BFCL_DROP = re.compile(r"[ ,./\-_*^]")


def bfcl_standardize(text: str) -> str:
    """BFCL's string standardisation: no spaces or `,./-_*^`, lower case, `'` read as `"`."""
    return _BFCL_DROP.sub("", text).lower().replace("'", '"')


@dataclass(frozen=True)
class Profile:
    name: str
    fold: Fold = trim_casefold  # how a plain-value matcher compares two strings
    strict_integers: bool = False  # an `integer` param takes only an integer literal (not 10.0)
    enums: bool = True  # a param's `enum` is enforced by the schema check
    undecodable_is_no_call: bool = False  # on a case expecting no call, an undecodable attempt is no call
    about: str = ""


DEFAULT = Profile("default", about="docs/contract.md")
BFCL = Profile("bfcl", fold=bfcl_standardize, strict_integers=True, enums=False, undecodable_is_no_call=True,
               about="BFCL's AST checker: strings without spaces, ,./-_*^ or case; integers without a fraction; "
                     "enums unchecked; an undecodable reply to an irrelevance case is no call")
PROFILES = {p.name: p for p in (DEFAULT, BFCL)}
