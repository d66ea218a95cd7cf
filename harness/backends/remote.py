"""Remote backends: Cloudflare Workers AI (`cloudflare-base`, `cloudflare-lora`) and any
OpenAI-compatible server (`openai`: vLLM, llama.cpp's server, TGI, Ollama).

Both are `HttpBackend`s that differ only in URL, body, reply shape and error table. `--raw`
renders the Llama 3 chat template here (the same renderer and date as the local backend and the
training data) and sends a plain prompt, so a deployed adapter sees the bytes it was trained on. The
prompt goes without its leading `<|begin_of_text|>`: servers tokenize a prompt with special tokens on
(vLLM, transformers serve, TGI), which adds one, and two would differ from training. `--raw-keep-bos`
sends it for a server that adds none. In chat mode the case's date goes as
`chat_template_kwargs.date_string` where the server takes it (OpenAI-compatible servers do).
"""
from __future__ import annotations

import json
from typing import Any

import httpx

from harness.backends import options as opts
from harness.backends.base import DECODINGS, BackendError, BackendOptions, Reply, Request
from harness.backends.http import (
    Failure,
    HttpBackend,
    RetryPolicy,
    Secret,
    check_base_url,
    classify_http,
    env_secret,
    parse_retry_after,
    public_url,
)
from harness.backends.options import flag
from harness.chat_format import BOS, EOT, date_string, render_llama3

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"
CLOUDFLARE_RPM = 240  # Workers AI allows about 300 text-generation requests a minute; keep headroom
DEFAULT_MAX_TOKENS = 384  # Workers AI's own default (256) cuts off some two-call replies

# Cloudflare error codes (docs/platform-notes.md): retry the ones that heal, stop the run on the ones that cannot.
CF_RETRY = {3040: "out of capacity", 3007: "timeout", 3008: "request aborted"}
CF_FATAL = {
    5007: "no such model: check {cf_model}",
    5005: "this model does not support LoRA adapters: pick a LoRA-capable {cf_model}",
    3037: "finetune not found: check {lora} (name or id) and the account",
    3036: "the account's daily free neuron allocation is used up: retry tomorrow or upgrade",
    3039: "the finetune is missing files: upload adapter_model.safetensors and adapter_config.json",
    5016: "the model's terms were not agreed to: accept them once in the dashboard or with 'agree'",
    10000: "authentication error: check CLOUDFLARE_API_TOKEN",
}


def classify_cloudflare(status: int, body: Any, headers: httpx.Headers) -> Failure:
    """Cloudflare's envelope errors first (by code), then the generic HTTP table."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code, message = first.get("code"), str(first.get("message", ""))
    if code in CF_FATAL:
        hint = CF_FATAL[code].format(cf_model=flag("cf_model"), lora=flag("lora"))  # as the user typed them
        return Failure("fatal", f"Cloudflare error {code}: {message} ({hint})")
    if code in CF_RETRY:
        return Failure("retry", f"Cloudflare error {code} ({CF_RETRY[code]}): {message}",
                       parse_retry_after(headers.get("retry-after")))
    generic = classify_http(status, body, headers)
    if code is not None:
        return Failure(generic.kind, f"Cloudflare error {code} (HTTP {status}): {message}", generic.retry_after)
    return generic


def _env_secret(var: str, backend: str, required: bool = True) -> Secret:
    return env_secret(var, f"--model={backend}", required)


def raw_prompt(request: Request, keep_bos: bool, template: "RawTemplate | None" = None) -> str:
    """The prompt for raw mode: the Llama 3 template, or `template`'s (--raw-template), so that exactly one BOS
    reaches the model."""
    if template is not None:
        return template.prompt(request, keep_bos)
    return render_llama3(request.messages, request.now, bos=BOS if keep_bos else "")


class RawTemplate:
    """--raw-template DIR: the chat template of a local tokenizer folder (the served model's own, e.g. ChatML for
    SmolLM2), rendered here with the case's date where the template reads one. Without it --raw renders Llama 3's,
    which a model of another family reads as noise."""

    def __init__(self, folder: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise BackendError(f"{flag('raw_template')} needs transformers: pip install -e '.[local]'") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise BackendError(f"{flag('raw_template')} {folder}: cannot load its tokenizer ({exc})") from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise BackendError(f"{flag('raw_template')} {folder}: the tokenizer has no chat template")
        self.folder = folder
        bos = self.tokenizer.bos_token_id
        # Strip the template's leading BOS only where the tokenizer adds one itself when the server encodes.
        self.adds_bos = bos is not None and self.tokenizer("x")["input_ids"][:1] == [bos]

    def prompt(self, request: Request, keep_bos: bool) -> str:
        from harness.chat_format import render_chat

        text = render_chat(self.tokenizer, request.messages, request.now, tools=request.tools)
        bos = self.tokenizer.bos_token
        if self.adds_bos and not keep_bos and bos and text.startswith(bos):
            text = text[len(bos):]
        return text

    @property
    def stops(self) -> list[str]:
        return [self.tokenizer.eos_token]

    def describe(self) -> str:
        import hashlib

        digest = hashlib.sha256(self.tokenizer.chat_template.encode()).hexdigest()[:12]
        return f"the chat template of {self.folder} (sha256 {digest}) rendered by the harness"


def _raw_template(options: BackendOptions) -> RawTemplate | None:
    folder = options.get("raw_template")
    if folder and not options.get("raw"):
        raise BackendError(f"{flag('raw_template')} is for {flag('raw')} (the chat path uses the server's own template)")
    return RawTemplate(folder) if folder else None


def calls_as_text(tool_calls: Any) -> str:
    """Structured tool calls as the native reply text the scorer reads: a JSON list of {"name", "arguments"},
    the arguments as the server sent them (an object, or a string that must hold one: if it does not, the
    call is malformed, never dropped)."""
    calls = []
    for call in tool_calls:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        calls.append({"name": fn.get("name"), "arguments": fn.get("arguments")} if isinstance(fn, dict) else call)
    return json.dumps(calls, ensure_ascii=False)


def _retry_policy(options: BackendOptions) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(options.get("max_attempts", RetryPolicy.max_attempts)),
        timeout_s=float(options.get("request_timeout", RetryPolicy.timeout_s)),
    )


class CloudflareBackend(HttpBackend):
    """POST {api}/accounts/{account}/ai/run/{model}, with `lora` for a finetune."""

    name = "cloudflare-base"
    OPTIONS = opts.CLOUDFLARE

    def __init__(
        self,
        model: str,
        account_id: str,
        token: Secret,
        *,
        lora: str | None = None,
        api_base: str = CLOUDFLARE_API,
        raw: bool = False,
        raw_keep_bos: bool = False,
        raw_template: RawTemplate | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        seed: int = 0,
        **http: Any,
    ) -> None:
        url_password = check_base_url(api_base, flag("cf_api_base"), own_auth=True)
        self.raw_template = raw_template
        super().__init__(secrets=[token, Secret(account_id), url_password], seed=seed, **http)
        self.model, self.account_id, self.token = model, account_id, token
        self.lora, self.raw, self.max_tokens, self.seed = lora, raw, max_tokens, seed
        self.raw_keep_bos = raw_keep_bos
        self.api_base = api_base.rstrip("/")
        if lora:
            self.name = "cloudflare-lora"

    def endpoint(self, request: Request) -> str:
        return f"{self.api_base}/accounts/{self.account_id}/ai/run/{self.model}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.reveal()}"}

    def payload(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": 0, "seed": self.seed}
        if self.raw:
            body.update(prompt=raw_prompt(request, self.raw_keep_bos, self.raw_template), raw=True)
        else:
            body["messages"] = [dict(m) for m in request.messages]
            if request.tools:
                body["tools"] = [dict(t) for t in request.tools]
        if self.lora:
            body["lora"] = self.lora
        return body

    def extract(self, body: Any) -> Reply:
        result = body["result"]  # a `success: false` envelope never gets here: the engine classifies it
        text = result.get("response")
        if result.get("tool_calls"):
            text = calls_as_text(result["tool_calls"])
        elif not isinstance(text, str):
            raise TypeError(f"response is {type(text).__name__}, not text")
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else None
        # Workers AI names no finish reason in every model's reply: a reply that used the whole budget was cut off.
        used = usage.get("completion_tokens") if usage else None
        truncated = result.get("finish_reason") == "length" or (isinstance(used, int) and used >= self.max_tokens)
        return Reply(text=text, usage=usage, truncated=truncated)

    def classify(self, status: int, body: Any, headers: httpx.Headers) -> Failure:
        return classify_cloudflare(status, body, headers)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.name, "cf_model": self.model, "lora": self.lora, "api_base": public_url(self.api_base),
            "generation": {"temperature": 0, "seed": self.seed, "max_tokens": self.max_tokens,
                           "mode": f"raw prompt ({_template_name(self.raw_template)})" if self.raw else "messages",
                           **_raw_or_chat_date(self.raw, self.raw_keep_bos, chat_date=None)},
        }

    def describe(self) -> str:
        return f"{self.name}: {self.model}{' + lora ' + self.lora if self.lora else ''} at {public_url(self.api_base)}" + (
            " (raw prompt)" if self.raw else "")

    @classmethod
    def from_options(cls, name: str, options: BackendOptions) -> "CloudflareBackend":
        lora = options.require("lora", name, "NAME_OR_ID (the finetune)") if name == "cloudflare-lora" else None
        model = options.require("cf_model", name, "MODEL (e.g. @cf/meta/llama-3.2-3b-instruct)")
        if model.startswith(("cf/", "hf/")):
            model = "@" + model  # pytest reads a bare `@file` argument as a file of arguments; accept it without
        return cls(
            model,
            _env_secret("CLOUDFLARE_ACCOUNT_ID", name).reveal(),
            _env_secret("CLOUDFLARE_API_TOKEN", name),
            lora=lora,
            api_base=options.get("cf_api_base", CLOUDFLARE_API),
            raw=bool(options.get("raw", False)),
            raw_keep_bos=bool(options.get("raw_keep_bos", False)),
            raw_template=_raw_template(options),
            max_tokens=int(options.get("max_new_tokens", DEFAULT_MAX_TOKENS)),
            seed=int(options.get("seed", 0)),
            concurrency=int(options.get("concurrency", 4)),
            requests_per_minute=int(options.get("requests_per_minute", CLOUDFLARE_RPM)),
            retry=_retry_policy(options),
        )


class OpenAIBackend(HttpBackend):
    """/v1/chat/completions (or /v1/completions with a rendered prompt in raw mode)."""

    name = "openai"
    OPTIONS = opts.OPENAI

    def __init__(
        self,
        base_url: str,
        served_model: str,
        api_key: Secret = Secret(""),
        *,
        raw: bool = False,
        raw_keep_bos: bool = False,
        raw_template: RawTemplate | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        seed: int = 0,
        decoding: str = "free",
        constraint_format: str = "vllm",
        **http: Any,
    ) -> None:
        url_password = check_base_url(base_url, flag("base_url"), own_auth=bool(api_key))
        if decoding not in DECODINGS or constraint_format not in CONSTRAINT_FORMATS:
            raise BackendError(f"{flag('decoding')} one of {', '.join(DECODINGS)}, {flag('constraint_format')} one of "
                               f"{', '.join(CONSTRAINT_FORMATS)}")
        self.decoding, self.constraint_format = decoding, constraint_format
        self.raw_template = raw_template
        super().__init__(secrets=[api_key, url_password], seed=seed, **http)
        self.base_url, self.served_model, self.api_key = base_url.rstrip("/"), served_model, api_key
        self.raw, self.raw_keep_bos, self.max_tokens, self.seed = raw, raw_keep_bos, max_tokens, seed

    def endpoint(self, request: Request) -> str:
        return f"{self.base_url}/{'completions' if self.raw else 'chat/completions'}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.reveal()}"} if self.api_key else {}

    def payload(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.served_model, "temperature": 0, "max_tokens": self.max_tokens,
                                "seed": self.seed}
        if self.raw:
            body.update(prompt=raw_prompt(request, self.raw_keep_bos, self.raw_template),
                        stop=self.raw_template.stops if self.raw_template else [EOT, "<|eom_id|>"])
        else:
            body["messages"] = [dict(m) for m in request.messages]
            # Without it the server's template writes its own clock's date: replies would change by the day.
            body["chat_template_kwargs"] = {"date_string": date_string(request.now)}
            if request.tools:
                body["tools"] = [dict(t) for t in request.tools]
        if self.decoding == "constrained":
            if request.grammar is None:
                raise BackendError(f"{request.key}: no grammar came with this request, so it cannot be sent constrained")
            body.update(constraint_fields(request.grammar.text, self.constraint_format))
        return body

    def extract(self, body: Any) -> Reply:
        choice = body["choices"][0]
        text = choice["text"] if self.raw else choice["message"].get("content")
        if not self.raw and choice["message"].get("tool_calls"):
            text = calls_as_text(choice["message"]["tool_calls"])
        elif not isinstance(text, str):
            raise TypeError("no text in the first choice")
        usage = body.get("usage")
        return Reply(text=text, usage=usage if isinstance(usage, dict) else None,
                     truncated=choice.get("finish_reason") == "length", constrained=self.decoding == "constrained")

    def classify(self, status: int, body: Any, headers: httpx.Headers) -> Failure:
        failure = super().classify(status, body, headers)
        if status == 404:
            return Failure("fatal", f"{failure.message} (check {flag('base_url')} and {flag('served_model')})")
        return failure

    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": self.name, "base_url": public_url(self.base_url), "served_model": self.served_model,
            "generation": {"temperature": 0, "seed": self.seed, "max_tokens": self.max_tokens,
                           "mode": f"completions with {_template_name(self.raw_template)}" if self.raw
                           else "chat completions",
                           **_raw_or_chat_date(self.raw, self.raw_keep_bos,
                                               chat_date="chat_template_kwargs.date_string from each case's now"),
                           "decoding": self.decoding,
                           **({"constraint_format": self.constraint_format} if self.decoding == "constrained" else {})},
        }

    def describe(self) -> str:
        return f"openai: {self.served_model} at {public_url(self.base_url)}{' (raw prompt)' if self.raw else ''}"

    @classmethod
    def from_options(cls, name: str, options: BackendOptions) -> "OpenAIBackend":
        key_var = options.get("api_key_env", "OPENAI_API_KEY")
        return cls(
            options.require("base_url", name, "URL (the server's /v1)"),
            options.require("served_model", name, "NAME"),
            _env_secret(key_var, name, required=False),
            raw=bool(options.get("raw", False)),
            raw_keep_bos=bool(options.get("raw_keep_bos", False)),
            raw_template=_raw_template(options),
            max_tokens=int(options.get("max_new_tokens", DEFAULT_MAX_TOKENS)),
            seed=int(options.get("seed", 0)),
            decoding=options.get("decoding") or "free",
            constraint_format=options.get("constraint_format") or "vllm",
            concurrency=int(options.get("concurrency", 4)),
            requests_per_minute=options.get("requests_per_minute"),
            retry=_retry_policy(options),
        )


CONSTRAINT_FORMATS = ("vllm", "llama.cpp")


def constraint_fields(lark: str, form: str) -> dict[str, Any]:
    """The request fields that carry a reply grammar (llguidance Lark) to a server that enforces it."""
    if form == "llama.cpp":  # llama-server built with LLGUIDANCE takes a Lark grammar behind this marker
        return {"grammar": "%llguidance {}\n" + lark}
    # vLLM: structured_outputs (0.10+) and its older guided_* fields, for the llguidance ("guidance") backend
    return {"structured_outputs": {"grammar": lark}, "guided_grammar": lark, "guided_decoding_backend": "guidance"}


def _template_name(template: RawTemplate | None) -> str:
    return template.describe() if template else "the Llama 3 template rendered by the harness"


def _raw_or_chat_date(raw: bool, keep_bos: bool, chat_date: str | None) -> dict[str, str]:
    """What the fingerprint says about the template's date and the BOS token, per mode."""
    if raw:
        return {"date": "rendered by the harness from each case's now",
                "bos": "sent in the prompt" if keep_bos else "left to the server's tokenizer (not in the prompt)"}
    return {"date": chat_date or f"the server's own clock (this API takes no template arguments; {flag('raw')} sends the case's date)"}
