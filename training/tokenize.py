"""Examples -> token ids with labels on the assistant turns only, and the checks that must pass first.

Masking is computed here, once, for every engine: each assistant turn's tokens (its content and
the end-of-turn token, so the model learns to stop) are labels; the system prompt, user turns and
tool results are -100. Spans are found by rendering the conversation up to each assistant turn,
which only works when the rendered prefix is a token prefix of the whole; that is checked, never assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from harness.chat_format import PAD_CANDIDATES, date_string, distinct_pad, render_chat
from harness.core.task import get_task
from harness.suite import Suite
from training.data.examples import example_now

IGNORE = -100


class TrainingRefused(Exception):
    """A job that cannot run as asked (bad data, options, or machine): printed as one line, no traceback.
    Anything else that goes wrong while training is a bug or a crash and keeps its traceback."""


class TrainingSetupError(TrainingRefused):
    """The run would train something other than what the harness evaluates; refuse to start."""


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_example(tokenizer: Any, example: Mapping[str, Any], stop_ids: Sequence[int]) -> Tokenized:
    messages, now, tools = example["messages"], example_now(example), example.get("tools")
    ids = _ids(tokenizer, render_chat(tokenizer, messages, now, add_generation_prompt=False, tools=tools))
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = _ids(tokenizer, render_chat(tokenizer, messages[:i], now, add_generation_prompt=True, tools=tools))
        upto = _ids(tokenizer, render_chat(tokenizer, messages[:i + 1], now, add_generation_prompt=False, tools=tools))
        if upto[:len(prompt)] != prompt or ids[:len(upto)] != upto:
            raise TrainingSetupError(
                f"group {example.get('group')}: the generation prompt is not a token prefix of the conversation, so "
                "training would not match generation (a tokenizer pre-split problem, e.g. GPT-2's regex on '\\n\\n{')"
            )
        span = ids[len(prompt):len(upto)]
        # The turn's labels run through its end-of-turn token; what the template writes after it (ChatML's "\n"
        # after <|im_end|>) is never generated, since generation stops at the token, so it is not trained on.
        end = max((k for k, t in enumerate(span) if t in stop_ids), default=None)
        if end is None:
            raise TrainingSetupError(
                f"group {example.get('group')}: assistant turn {i} does not end with an end-of-turn token "
                "in the template, so the model would never learn to stop"
            )
        labels[len(prompt):len(prompt) + end + 1] = span[:end + 1]
    return Tokenized(input_ids=ids, labels=labels)


def ensure_pad(tokenizer: Any) -> str:
    """A pad token distinct from EOS: set Llama 3's <|finetune_right_pad_id|> (or another) when missing;
    refuse pad == eos, which masks the stop token out of the loss."""
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        choice = distinct_pad(tokenizer)
        if choice is None and tokenizer.pad_token_id is None:
            raise TrainingSetupError("the tokenizer has no pad token, none of " + ", ".join(PAD_CANDIDATES)
                                     + " and no other special token distinct from EOS")
        if choice is not None:
            tokenizer.pad_token = choice
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise TrainingSetupError(
            f"pad token {tokenizer.pad_token!r} == eos token: the end-of-turn token would be masked as padding and the "
            "model would never learn to stop; set a distinct pad (Llama 3: <|finetune_right_pad_id|>)"
        )
    return tokenizer.pad_token


def check_template_parity(tokenizer: Any, examples: Sequence[Mapping[str, Any]], suite: Suite,
                          sample: int = 50) -> None:
    """The prompt training renders must be what the harness renders at evaluation: the same system
    prompt of `suite` (the data was built with today's harness) and the case's date in the template."""
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingSetupError("the tokenizer has no chat template; use an Instruct model's tokenizer")
    uses_date = "date_string" in tokenizer.chat_template
    task = get_task(suite.task)
    for ex in list(examples)[:sample]:
        now = example_now(ex)
        messages = ex["messages"]
        trained = render_chat(tokenizer, messages[:-1], now, tools=ex.get("tools"))
        asked = task.conversation_request(list(messages[1:-1]), now, suite)  # what evaluation sends
        evaluated = render_chat(tokenizer, list(asked.messages), asked.now, tools=asked.tools)
        if trained != evaluated:
            raise TrainingSetupError(
                f"group {ex.get('group')}: the training prompt differs from the harness's evaluation prompt for a "
                f"{suite.task} suite (was the data built with an older system prompt, or for another suite? rebuild "
                "it with python -m training.data build, and pass the suite it is for with --golden)"
            )
        if uses_date and f"Today Date: {date_string(now)}" not in trained and date_string(now) not in trained:
            raise TrainingSetupError(f"group {ex.get('group')}: the template did not render the example's date")
