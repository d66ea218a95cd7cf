"""The options backends read, declared once as data: each backend's OPTIONS table is what the pytest plugin turns
into flags (`--th-<name>`), what `python -m deploy` reuses, and what checks a value's minimum before anything loads.

Stdlib only: the plugin reads every table when pytest starts, before it knows which backend was chosen, so no table
may import torch or an HTTP stack. A message that names an option names it as the user typed it (`flag`): the
plugin sets its prefix for the session, the argparse front ends keep the plain `--name`.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

_PREFIX: contextvars.ContextVar[str] = contextvars.ContextVar("flag_prefix", default="--")


@dataclass(frozen=True)
class Option:
    """One setting a backend reads from BackendOptions under `name` (the flag is `--` + name with dashes)."""

    name: str
    help: str
    type: Callable[[str], Any] | None = str  # int, float, str; bool: a switch that takes no value
    default: Any = None                      # what the backend uses when it is not given (said in the help)
    minimum: float | None = None             # a smaller value is a usage error before anything runs
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        """The flag in the current front end's spelling (`--th-adapter` under pytest, `--adapter` elsewhere)."""
        return flag(self.name)

    def argparse_kwargs(self) -> dict[str, Any]:
        """What argparse's (and pytest's) addoption takes for this option, its default left to the backend."""
        help_text = self.help + (f" (default: {self.default})" if self.default not in (None, False) else "")
        if self.type is bool:
            return {"action": "store_true", "default": False, "help": help_text}
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "type": self.type}
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.choices:
            kwargs["choices"] = self.choices
        return kwargs

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of range (None: it is fine, or not given)."""
        if value is None or self.minimum is None or value >= self.minimum:
            return None
        return f"{self.flag} {value:g}: must be {'> 0' if self.minimum < 1 else f'>= {self.minimum:g}'}"


def first_problem(options: Iterable[Option], values: Mapping[str, Any]) -> str | None:
    """Why the first value out of its option's range is (None: every value given is fine)."""
    return next(filter(None, (o.problem(values.get(o.name)) for o in options)), None)


def flag(name: str) -> str:
    """An option's flag as the user types it in the running front end."""
    return _PREFIX.get() + name.replace("_", "-")


@contextlib.contextmanager
def flag_prefix(prefix: str) -> Iterator[None]:
    """Messages name options with `prefix` (the pytest plugin's `--th-`) while this is open."""
    token = _PREFIX.set(prefix)
    try:
        yield
    finally:
        _PREFIX.reset(token)


def merge(tables: Iterable[Iterable[Option]]) -> list[Option]:
    """One option per name across tables; two tables that declare one name differently is a programming error."""
    out: dict[str, Option] = {}
    for table in tables:
        for opt in table:
            if out.setdefault(opt.name, opt) != opt:
                raise ValueError(f"option {opt.name!r} is declared twice, differently: {out[opt.name]} and {opt}")
    return list(out.values())


DECODING = Option("decoding", "local, openai: free (the model's own greedy choice) or constrained (only what the "
                             "suite's reply grammar allows: a valid call or plain text; llguidance)", str, "free",
                  choices=("free", "constrained"))
MAX_NEW_TOKENS = Option("max_new_tokens", "reply length limit in tokens", int, 384, minimum=1, metavar="N")

REPLAY = (Option("replies", "replay: recorded replies, one {id, response, latency_s?} JSON line per case",
                 metavar="FILE"),)

LOCAL = (
    Option("base_model", "local: base model folder or cached hub id (local-base: the shipped SmolLM2-135M-Instruct, "
                         "converted on first use; local-adapter: the one adapter_config.json names)",
           metavar="ID_OR_DIR"),
    Option("adapter", "local-adapter: the LoRA adapter folder", metavar="DIR"),
    Option("device", "local: cuda, cuda:1, cpu (default: cuda when available)"),
    Option("dtype", "local: float32, bfloat16, float16 (default: bf16 on CUDA, fp32 on CPU)"),
    Option("load_in_4bit", "local: load the base model in 4-bit NF4 (CUDA + bitsandbytes)", bool),
    Option("allow_base_mismatch", "local-adapter: accept a base model whose name differs from the adapter's base "
                                  "(shapes are still checked)", bool),
    Option("batch_size", "local: prompts per generate call", int, 8, minimum=1, metavar="N"),
    MAX_NEW_TOKENS,
    Option("generation_mode", "local: KV cache and compilation: dynamic, static, or compiled (static cache + "
                              "torch.compile); auto = compiled on CUDA, dynamic on CPU", str, "auto",
           choices=("auto", "dynamic", "static", "compiled")),
    Option("merge_adapter", "local-adapter: merge the LoRA into the base weights before generating (the same greedy "
                            "replies, no LoRA cost per token)", bool),
    DECODING,
)

# Both remote backends (Cloudflare Workers AI and any OpenAI-compatible server)
REMOTE = (
    MAX_NEW_TOKENS,
    Option("raw", "remote: render the chat template here and send a raw prompt", bool),
    Option("raw_template", "remote raw: render the chat template of this tokenizer folder (the served model's own, "
                           "e.g. ChatML) instead of Llama 3's", metavar="DIR"),
    Option("raw_keep_bos", "remote raw: keep <|begin_of_text|> in the prompt (for a server whose tokenizer adds "
                           "none; most add one)", bool),
    Option("concurrency", "remote: requests in flight", int, 4, minimum=1, metavar="N"),
    Option("requests_per_minute", "remote: client-side rate limit (cloudflare: 240 unless given)", int, minimum=1,
           metavar="N"),
    Option("seed", "remote: sampling seed sent with each request", int, 0),
    Option("request_timeout", "remote: seconds per request attempt", float, 60, minimum=0.001, metavar="S"),
    Option("max_attempts", "remote: attempts per request, retries included", int, 5, minimum=1, metavar="N"),
)

CLOUDFLARE = REMOTE + (
    Option("cf_model", "cloudflare: the Workers AI model, e.g. @cf/meta/llama-3.2-3b-instruct", metavar="MODEL"),
    Option("lora", "cloudflare-lora: the finetune's name or id", metavar="NAME_OR_ID"),
    Option("cf_api_base", "cloudflare: API base", str, "https://api.cloudflare.com/client/v4", metavar="URL"),
)

OPENAI = REMOTE + (
    Option("base_url", "openai: the server's /v1 URL, e.g. http://127.0.0.1:8000/v1", metavar="URL"),
    Option("served_model", "openai: the model (or LoRA) name the server serves", metavar="NAME"),
    Option("api_key_env", "openai: environment variable holding the API key", str, "OPENAI_API_KEY", metavar="VAR"),
    DECODING,
    Option("constraint_format", "openai constrained: how the reply grammar is sent: vllm (structured_outputs.grammar "
                                "and guided_grammar, Lark for the llguidance backend) or llama.cpp (grammar, with "
                                "%llguidance)", str, "vllm", choices=("vllm", "llama.cpp")),
)
