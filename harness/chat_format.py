"""The Llama 3.x chat format, rendered without a tokenizer, and the "Today Date" string.

The local backend renders with the tokenizer's own template; the Cloudflare `--raw` mode and the
training data need the same bytes without loading a tokenizer. `render_llama3` reproduces the
Llama 3.2 Instruct template (`templates/llama3_2.jinja`, as shipped with the model and with TRL)
for conversations without a `tools` argument; a test checks it against the real template.
"""
from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any, Mapping, Sequence

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
STOP_TOKENS = (EOT, "<|eom_id|>", "<|end_of_text|>")
PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<pad>", "<|pad|>")  # pads distinct from EOS, Llama 3's first
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def llama3_template() -> str:
    """The Llama 3.2 Instruct chat template (jinja)."""
    return (resources.files("harness") / "templates" / "llama3_2.jinja").read_text(encoding="utf-8")


def date_string(now: datetime) -> str:
    """The template's `date_string` ("24 Feb 2026"), from the case's now, never the wall clock.

    Spelled out rather than `strftime("%d %b %Y")`, whose month name follows the locale.
    """
    return f"{now.day:02d} {_MONTHS[now.month - 1]} {now.year}"


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


def render_llama3(
    messages: Sequence[Mapping[str, str]], now: datetime, *, add_generation_prompt: bool = True, bos: str = BOS
) -> str:
    """Byte-identical to the Llama 3.2 template for system/user/assistant/tool messages."""
    system = ""
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"].strip(), messages[1:]
    out = [bos, _header("system"), "Cutting Knowledge Date: December 2023\n",
           f"Today Date: {date_string(now)}\n\n", system, EOT]
    for m in messages:
        if m["role"] in ("tool", "ipython"):
            # The template's `is iterable` test is true for strings, so tool results are JSON-quoted.
            out += [_header("ipython"), json.dumps(m["content"], ensure_ascii=False), EOT]
        else:
            out += [_header(m["role"]), m["content"].strip(), EOT]
    if add_generation_prompt:
        out.append(_header("assistant"))
    return "".join(out)


def distinct_pad(tokenizer: Any) -> str | None:
    """A pad distinct from EOS that the tokenizer already has (a new token would change the embedding matrix and
    break adapters): Llama 3's reserved pad first, then any other special token that is neither EOS nor BOS nor
    written by the chat template (SmolLM2's `<|endoftext|>`); None when there is none."""
    vocab = tokenizer.get_vocab()
    known = next((t for t in PAD_CANDIDATES if t in vocab), None)
    if known is not None:
        return known
    template = getattr(tokenizer, "chat_template", None) or ""
    taken = {tokenizer.eos_token, tokenizer.bos_token}
    specials = list(getattr(tokenizer, "all_special_tokens", []) or [])
    specials += [t for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values()
                 if getattr(t, "special", False)]
    for token in specials:
        text = str(getattr(token, "content", token))
        if text and text not in taken and text in vocab and text not in template:
            return text
    return None


def template_uses_date(tokenizer: Any) -> bool:
    """Whether the chat template reads `date_string` (Llama 3.x does; ChatML does not)."""
    return "date_string" in (getattr(tokenizer, "chat_template", None) or "")


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]], now: datetime, *,
                add_generation_prompt: bool = True, tools: Sequence[Mapping[str, Any]] | None = None) -> str:
    """A conversation through the tokenizer's own chat template, dated by the conversation's `now` (and with
    `tools` rendered by the template itself, for native tool calling). The one renderer for evaluation
    (local backend) and training, so both see the same text."""
    extra: dict[str, Any] = {"tools": [dict(t) for t in tools]} if tools else {}
    if template_uses_date(tokenizer):  # only where the template reads it; the system prompt carries the date anyway
        extra["date_string"] = date_string(now)
    return tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt, **extra,
    )
