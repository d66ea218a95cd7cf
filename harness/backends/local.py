"""`local-base` and `local-adapter`: transformers (+ PEFT) on this machine, greedy, batched.

The same code loads the real Llama 3.2 3B on a GPU and the tiny offline model in CI: AutoTokenizer,
AutoModelForCausalLM, PeftModel.from_pretrained; the tokenizer's own chat template, rendered with
the case's date (never the wall clock); left padding; stop at the end-of-turn tokens.

Generation modes: `dynamic` (transformers' default cache), `static` (a preallocated KV cache), `compiled` (the
static cache with the decoding step compiled by torch.compile, what makes batch-1 decoding approach the memory
bandwidth on a GPU). `auto` is `compiled` on CUDA and `dynamic` on CPU, where compiling costs more than it saves.
The static modes warm up once before the first timed batch (compilation and cache allocation, sized for the
longest prompt), so no reply's latency holds a one-time cost.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from harness.backends import options as opts
from harness.backends.base import DECODINGS, GENERATION_MODES, Backend, BackendError, BackendOptions, OnReply, Reply, Request
from harness.backends.constrained import Constraint
from harness.backends.constrained import library as constraint_library
from harness.backends.options import flag
from harness.backends.shared_prefix import NAME as SHARED_PREFIX_ATTENTION
from harness.backends.shared_prefix import attending, prefix_layers
from harness.chat_format import STOP_TOKENS, distinct_pad, render_chat
from harness.hashing import model_weights_sha256, safetensors_header, sha256_file

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
SHARED_PREFIX_MIN = 256  # tokens every prompt of a call shares for all of them to be one prefix group
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 384
    batch_size: int = 8  # decoding is always greedy (do_sample=False): temperature-0 semantics
    mode: str = "auto"  # GENERATION_MODES; auto: compiled on CUDA, dynamic elsewhere
    compile_backend: str = "inductor"  # torch.compile backend of the compiled mode ("eager" checks tracing only)
    merge_adapter: bool = False  # fold the LoRA into the base weights before generating (same replies, faster)
    # The dynamic mode's own greedy loop: the token prefix a group of prompts shares (template header + system
    # prompt) is computed once and its KV reused, and a finished row's slot takes the next waiting prompt
    # (continuous batching). Off: transformers' generate() over fixed batches.
    prefix_cache: bool = True
    # "constrained": each reply follows its request's grammar (harness.grammar, llguidance), in the same greedy
    # loop; "free": the model's own argmax.
    decoding: str = "free"


def resolve_mode(mode: str, device: str) -> str:
    """The generation mode a run uses on this device."""
    if mode not in GENERATION_MODES:
        raise BackendError(f"{flag('generation_mode')} {mode!r}: use one of {', '.join(GENERATION_MODES)}")
    if mode == "auto":
        return "compiled" if device.startswith("cuda") else "dynamic"
    return mode


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    weights: Path
    config: dict[str, Any]

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    def essentials(self) -> dict[str, Any]:
        """What identifies the adapter, and the training run that made it when its job.json is beside it."""
        targets = self.config.get("target_modules")
        job = self.path / "job.json"
        return {
            "training_job_sha256": sha256_file(job) if job.is_file() else None,
            "path": str(self.path),
            "sha256": sha256_file(self.weights),
            "config_sha256": sha256_file(self.path / "adapter_config.json"),
            "peft_type": self.config.get("peft_type"),
            "r": self.config.get("r"),
            "lora_alpha": self.config.get("lora_alpha"),
            "target_modules": sorted(targets) if isinstance(targets, list) else targets,
            "base_model_name_or_path": self.base_model,
        }


def read_adapter(path: str | Path) -> AdapterInfo:
    """Check an adapter folder (adapter_config.json + adapter weights) and read its config."""
    folder = Path(path)
    if not folder.is_dir():
        raise BackendError(f"{flag('adapter')} {folder}: no such folder (expected adapter_config.json + adapter_model.safetensors)")
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise BackendError(f"{flag('adapter')} {folder}: no adapter_config.json; is this a LoRA adapter folder?")
    weights = next((folder / n for n in ADAPTER_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        raise BackendError(f"{flag('adapter')} {folder}: no adapter_model.safetensors")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackendError(f"{config_path}: not valid JSON ({exc})") from None
    return AdapterInfo(path=folder, weights=weights, config=config)


def same_base(a: str, b: str) -> bool:
    """Same model by name: equal, or the same last path part ("unsloth/Llama-3.2-3B-Instruct" ~ "/models/Llama-3.2-3B-Instruct")."""
    norm = lambda s: s.rstrip("/").split("/")[-1].lower()  # noqa: E731
    return a == b or norm(a) == norm(b)


def check_adapter_fits(model: torch.nn.Module, adapter: AdapterInfo, base_model: str) -> None:
    """Compare the adapter's LoRA matrices with the base model's layers before PEFT loads them,
    so a 3B adapter on an 8B base fails with the layer and both shapes, not a bare size mismatch."""
    shapes = _tensor_shapes(adapter.weights)
    modules = dict(model.named_modules())
    for key, shape in shapes.items():
        m = re.match(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$", key)
        if not m:
            continue
        name, which = m.groups()
        module = modules.get(name)
        if module is None or not hasattr(module, "in_features"):
            raise BackendError(
                f"adapter {adapter.path} targets layer {name!r}, which base model {base_model} does not have: "
                f"it was trained on {adapter.base_model!r}"
            )
        want = module.in_features if which == "A" else module.out_features
        got = shape[1] if which == "A" else shape[0]
        if got != want:
            raise BackendError(
                f"adapter {adapter.path} does not fit base model {base_model}: layer {name} has "
                f"{'in' if which == 'A' else 'out'}_features {want}, the adapter's lora_{which} expects {got}; "
                f"it was trained on {adapter.base_model!r}"
            )


def _tensor_shapes(path: Path) -> dict[str, list[int]]:
    if path.suffix == ".safetensors":
        return {k: shape for k, (shape, _) in safetensors_header(path).items()}
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: list(v.shape) for k, v in state.items()}


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device_dtype(device: str | None, dtype: str | None) -> tuple[str, torch.dtype]:
    """CUDA with bf16 where available, else CPU with fp32; either can be overridden."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise BackendError(f"{flag('dtype')} {dtype!r}: use one of {', '.join(DTYPES)}")
    return device, DTYPES[dtype]


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """The end-of-turn ids: Llama's <|eot_id|>/<|eom_id|>/<|end_of_text|> and the model's own EOS."""
    ids: list[int] = []
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in STOP_TOKENS if t in vocab]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


class LocalBackend(Backend):
    """A causal LM from a local folder (or a hub id already in the local cache), optionally with a LoRA adapter."""

    name = "local-base"
    OPTIONS = opts.LOCAL

    def __init__(
        self,
        base_model: str | None,
        adapter: str | Path | None = None,
        *,
        settings: GenerationSettings = GenerationSettings(),
        device: str | None = None,
        dtype: str | None = None,
        load_in_4bit: bool = False,
        allow_base_mismatch: bool = False,
    ) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.adapter = read_adapter(adapter) if adapter is not None else None
        if self.adapter is not None:
            self.name = "local-adapter"
        base_model = base_model or (self.adapter.base_model if self.adapter else None)
        if not base_model:
            raise BackendError(f"no base model: pass {flag('base_model')} (the adapter's config names none)")
        if self.adapter and self.adapter.base_model and not allow_base_mismatch and not same_base(base_model, self.adapter.base_model):
            raise BackendError(
                f"adapter {self.adapter.path} was trained on {self.adapter.base_model!r}, not {flag('base_model')} "
                f"{base_model!r}; pass the adapter's base (or {flag('allow_base_mismatch')} if they are the same weights)"
            )
        self.base_model = base_model
        from harness.models import read_provenance

        # A packaged model converted by harness.models says where it came from; the fingerprint carries it.
        self.provenance = read_provenance(Path(base_model))  # None for a hub id or a folder without one
        self.device, self.dtype = pick_device_dtype(device, dtype)
        if settings.decoding not in DECODINGS:
            raise BackendError(f"{flag('decoding')} {settings.decoding!r}: one of {', '.join(DECODINGS)}")
        constrained = settings.decoding == "constrained"
        # the grammar masks each step of the harness's own greedy loop (the dynamic mode's)
        self.mode = "dynamic" if constrained and settings.mode == "auto" else resolve_mode(settings.mode, self.device)
        if constrained and (self.mode != "dynamic" or not settings.prefix_cache):
            raise BackendError(f"{flag('decoding')} constrained runs in the dynamic generation mode's own loop: leave "
                               f"{flag('generation_mode')} at auto or dynamic")
        if settings.merge_adapter and self.adapter is None:
            raise BackendError(f"{flag('merge_adapter')} needs an adapter (--model=local-adapter {flag('adapter')} DIR)")
        if settings.merge_adapter and load_in_4bit:
            raise BackendError(f"{flag('merge_adapter')} with {flag('load_in_4bit')} would merge into rounded 4-bit weights and change "
                               "the replies; load the base in 16 bits to merge")
        self.warmup_s: float | None = None  # the one-time cost before the first timed batch (static modes)
        self._prefixes: dict[tuple[int, ...], Any] = {}  # shared token prefix -> its KV cache (prefix_cache)
        self._tokens: dict[str, list[int]] = {}  # this generate() call's prompt ids, by request key
        self._group_of: dict[str, str] = {}  # request key -> its prefix group in this generate() call
        self._group_prefix: dict[str, tuple[int, ...]] = {}  # request key -> the token prefix its group shares
        self.prefill_s = 0.0  # one-time shared-prefix prefill, not in any reply's latency
        self.prefix_tokens_computed = 0
        self.load_in_4bit = load_in_4bit
        self.tokenizer = self._load_tokenizer()
        self.model = self._load_model()
        self.stop_ids = stop_token_ids(self.tokenizer, self.model)
        if not self.stop_ids:
            raise BackendError(f"{self._tokenizer_source}: no end-of-turn token ({', '.join(STOP_TOKENS)}) and no EOS")
        self.constraint: Constraint | None = Constraint(self.tokenizer, self.stop_ids) if constrained else None

    # -- loading -----------------------------------------------------------------------------
    @property
    def _tokenizer_source(self) -> str:
        """The adapter's own tokenizer files when it has them (what training used), else the base's."""
        if self.adapter and all((self.adapter.path / f).is_file() for f in TOKENIZER_FILES[:1]):
            return str(self.adapter.path)
        return self.base_model

    def _load_tokenizer(self) -> Any:
        try:
            tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_source)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the tokenizer of {self._tokenizer_source}: {exc}") from None
        if not getattr(tokenizer, "chat_template", None):
            raise BackendError(
                f"tokenizer of {self._tokenizer_source} has no chat template; use an Instruct model's tokenizer"
            )
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            tokenizer.pad_token = distinct_pad(tokenizer) or tokenizer.eos_token  # at inference pad == EOS is harmless
        tokenizer.padding_side = "left"  # decoder-only batching: the prompt must end where generation starts
        return tokenizer

    def _load_model(self) -> Any:
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if self.load_in_4bit:
            if not self.device.startswith("cuda"):
                raise BackendError(f"{flag('load_in_4bit')} needs a CUDA device")
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError:
                raise BackendError(f"{flag('load_in_4bit')} needs bitsandbytes: pip install -e '.[gpu]'") from None
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=self.dtype,
                bnb_4bit_use_double_quant=True,
            )
            kwargs["device_map"] = {"": self.device}
        try:
            model = AutoModelForCausalLM.from_pretrained(self.base_model, **kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(
                f"cannot load base model {self.base_model!r}: {exc}. No model hub is reachable from here: "
                "pass a local folder, or a hub id already in the local cache"
            ) from None
        if not self.load_in_4bit:
            model.to(self.device)
        if self.mode == "dynamic" and self.settings.prefix_cache and model.config._attn_implementation == "sdpa":
            # SDPA outside the prefix-cached loop; inside it, also the prefix every row shares, read once a step
            model.set_attn_implementation(SHARED_PREFIX_ATTENTION)
        if self.adapter is not None:
            check_adapter_fits(model, self.adapter, self.base_model)
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.adapter.path))
            if self.settings.merge_adapter:
                model = model.merge_and_unload()  # W + BA once, instead of the LoRA path in every forward
        model.eval()
        return model

    # -- generation --------------------------------------------------------------------------
    def render(self, request: Request) -> str:
        """The prompt text: the tokenizer's chat template, the case's date, the generation header."""
        return render_chat(self.tokenizer, request.messages, request.now, tools=request.tools)

    def generate(self, requests: Sequence[Request], on_reply: OnReply | None = None) -> list[Reply]:
        if self.mode != "dynamic" and self.warmup_s is None and requests:
            self._warm_up(requests)
        replies: list[Reply] = []
        if self.mode == "dynamic" and self.settings.prefix_cache:
            self._plan_prefix(requests)
            got: dict[str, Reply] = {}

            def keep(reply: Reply) -> None:
                got[reply.key] = reply
                if on_reply is not None:
                    on_reply(reply)
            try:
                return self._generate_continuous(requests, keep)
            except torch.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if self.constraint is not None:  # the batch path decodes freely: never fall back to it silently
                    raise BackendError(f"out of memory under constrained decoding: lower {flag('batch_size')}") from None
                # What was answered stays; the rest goes through the batch path, which splits a batch that does
                # not fit and fails only a prompt that fits alone nowhere.
                replies = [got[r.key] for r in requests if r.key in got]
                requests = [r for r in requests if r.key not in got]
        for start in range(0, len(requests), self.settings.batch_size):
            batch = requests[start:start + self.settings.batch_size]
            done = [request.bind(reply) for request, reply in zip(batch, self._generate_or_split(batch), strict=True)]
            for reply in done:
                if on_reply is not None:
                    on_reply(reply)
            replies += done
        return replies

    def _generate_or_split(self, batch: Sequence[Request]) -> list[Reply]:
        """A batch that runs out of memory is retried one prompt at a time; a prompt that still does not fit
        (memory or context length) fails alone as a case error. Any other exception is a bug or a broken
        device and propagates: the run stops with its traceback instead of scoring it as model replies."""
        too_long = [self._context_problem(r) for r in batch]
        if any(too_long):
            return [Reply(text=None, error=why) if why else self._generate_or_split([r])[0]
                    for r, why in zip(batch, too_long)]
        try:
            return self._generate_batch(batch)
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) > 1:
                return [reply for r in batch for reply in self._generate_or_split([r])]
            return [Reply(text=None, error=f"generation failed: out of memory on one prompt: {exc}".splitlines()[0])]

    def _prompt_tokens(self, request: Request) -> int:
        return len(self.tokenizer(self.render(request), add_special_tokens=False)["input_ids"])

    def _context_problem(self, request: Request, n: int | None = None) -> str | None:
        """Why this prompt (of `n` tokens, counted here when not given) cannot be generated within the model's
        context window, or None."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if not limit:
            return None
        n = self._prompt_tokens(request) if n is None else n
        if n + self.settings.max_new_tokens > limit:
            return (f"generation failed: prompt of {n} tokens + max_new_tokens {self.settings.max_new_tokens} "
                    f"exceeds the model's context of {limit} tokens")
        return None

    def _warm_up(self, requests: Sequence[Request]) -> None:
        """One untimed generate on the longest prompt (a full batch of it): compiles the decoding step and sizes
        the static cache for every later call (transformers keeps the largest size), so the timed batches that
        follow reuse both."""
        sized = [(self._prompt_tokens(r), r) for r in requests]
        fits = [(n, r) for n, r in sized if self._context_problem(r, n) is None]
        if not fits:
            self.warmup_s = 0.0
            return
        longest = max(fits, key=lambda nr: nr[0])[1]
        started = time.perf_counter()
        try:
            self._generate_batch([longest] * min(self.settings.batch_size, len(requests)))
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # the batches will split themselves; the warm-up was only an optimisation
        self.warmup_s = time.perf_counter() - started

    def _mode_kwargs(self) -> dict[str, Any]:
        if self.mode == "dynamic":
            return {}
        if self.mode == "static":
            return {"cache_implementation": "static", "disable_compile": True}
        from transformers import CompileConfig

        config = CompileConfig(backend=self.settings.compile_backend)
        if not self.device.startswith("cuda"):
            config._compile_all_devices = True  # transformers compiles only on accelerators unless told
        return {"cache_implementation": "static", "compile_config": config}

    def _generate_batch(self, batch: Sequence[Request]) -> list[Reply]:
        texts = [self.render(r) for r in batch]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                **enc, max_new_tokens=self.settings.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                top_k=None, eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id, **self._mode_kwargs(),
            )
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        new = out[:, enc["input_ids"].shape[1]:]
        replies = []
        for row, prompt_mask in zip(new.tolist(), enc["attention_mask"].tolist()):
            stop = next((i + 1 for i, t in enumerate(row) if t in self.stop_ids), None)
            n = stop or len(row)
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            usage = {"prompt_tokens": sum(prompt_mask), "completion_tokens": n}
            truncated = stop is None and n >= self.settings.max_new_tokens
            replies.append(Reply(text=text, latency_s=elapsed, usage=usage, truncated=truncated))
        return replies

    def _ids(self, request: Request) -> list[int]:
        ids = self._tokens.get(request.key)
        return ids if ids is not None else self.tokenizer(self.render(request), add_special_tokens=False)["input_ids"]

    def _shareable(self, row: Sequence[int], key: str | None = None) -> int:
        """How many leading tokens of `row` are a prefix other prompts share: its group's (see _plan_prefix), or
        the longest prefix already cached. Only that is computed once and kept; a prompt that shares nothing is
        prefilled whole, inside its own latency."""
        best = 0
        for cached in self._prefixes:
            if len(cached) > best and tuple(row[:len(cached)]) == cached:
                best = len(cached)
        group = self._group_prefix.get(key, ()) if key is not None else ()
        if group and tuple(row[:len(group)]) == group:
            best = max(best, len(group))
        return best

    def _plan_prefix(self, requests: Sequence[Request]) -> None:
        """Tokenize this call's prompts once, and group them by their opening system message (the harness's system
        prompt: template header, tools and the case's date): a group of two or more shares the token prefix common
        to all its prompts, which is computed once. The golden suite's 74 cases of one date are one group; when every
        prompt shares at least SHARED_PREFIX_MIN tokens (the assistant prompt's date comes last), all are one."""
        self._tokens = {r.key: self.tokenizer(self.render(r), add_special_tokens=False)["input_ids"] for r in requests}
        groups: dict[str, list[str]] = {}
        everyone = common_prefix(list(self._tokens.values())) if len(self._tokens) > 1 else 0
        for r in requests:
            head = r.messages[0]["content"] if r.messages and r.messages[0].get("role") == "system" else ""
            # one group when every prompt shares a long prefix (the assistant prompt states its date last, so
            # prompts of every date share template header and tools); else one per opening system message
            key = "" if everyone >= SHARED_PREFIX_MIN else f"{r.now.isoformat()}\0{head}"
            groups.setdefault(key, []).append(r.key)
        self._group_of = {key: name for name, keys in groups.items() for key in keys}
        self._group_prefix = {}
        for keys in groups.values():
            if len(keys) < 2:
                continue
            rows = [self._tokens[k] for k in keys]
            prefix = tuple(rows[0][:common_prefix(rows)])
            for k in keys:
                self._group_prefix[k] = prefix

    def _prefix_kv(self, prefix: tuple[int, ...]) -> Any:
        """The KV cache of `prefix` (one row), computed once per distinct prefix and kept (the golden suite's 74
        cases of one `now` share one); its time goes to `prefill_s`, not to any reply."""
        hit = self._prefixes.get(prefix)
        if hit is not None:
            return hit
        started = time.perf_counter()
        cache = reserved_cache(self.model.config)
        ids = torch.tensor([prefix], device=self.model.device)
        with torch.inference_mode():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        self.prefill_s += time.perf_counter() - started
        self.prefix_tokens_computed += len(prefix)
        if len(self._prefixes) >= 4:
            self._prefixes.pop(next(iter(self._prefixes)))
        self._prefixes[prefix] = cache
        return cache

    def _generate_continuous(self, requests: Sequence[Request], on_reply: OnReply | None) -> list[Reply]:
        """Greedy decoding of every request of the call in one loop of `batch_size` slots. Prompts that share the
        call's token prefix start from its cached KV and prefill only their suffix; a slot whose reply ends (an
        end-of-turn token or the budget) is refilled with the next waiting prompt. Rows of different lengths sit
        in one cache, each right-aligned with its own mask and positions, so every token attends to exactly its own
        prompt and reply. A reply's latency runs from its admission to its last token; the shared prefill is a
        one-time cost reported apart."""
        replies: dict[str, Reply] = {}
        waiting: list[Request] = []
        for request in requests:
            why = self._context_problem(request, len(self._ids(request)))
            if why is None and self.constraint is not None and request.grammar is None:
                why = "no grammar came with this request, so it cannot be decoded constrained"
            if why:
                replies[request.key] = request.bind(Reply(text=None, error=why))
                if on_reply is not None:
                    on_reply(replies[request.key])
            else:
                waiting.append(request)
        waiting.reverse()  # pop() takes them in order
        stop, device, width = set(self.stop_ids), self.model.device, self.settings.batch_size
        rows: list[dict[str, Any]] = []  # the active slots, in cache order
        active: tuple[int, ...] = ()  # the prefix every active row shares (held once, outside their cache)
        active_layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        cache: Any = None
        mask: torch.Tensor | None = None
        with torch.inference_mode():
            while waiting or rows:
                free = width - len(rows)
                admitted: list[Request] = []
                if waiting and free >= min(len(waiting), max(1, width // 4)):
                    admitted = self._take_group(waiting, free)
                    prefix = self._admission_prefix(admitted)
                    if rows and prefix != active:  # rows attend to one shared prefix: wait until these are done
                        waiting += admitted[::-1]
                        admitted = []
                if admitted:
                    active = prefix
                    new_rows, new_cache, new_mask, logits = self._admit(admitted, active)
                    active_layers = self._prefix_layers(active)  # looked up once per admission, not every step
                    for row, token in zip(new_rows, self._pick(new_rows, logits)):
                        row["out"].append(token)
                    cache, mask = _join_rows(cache, mask, new_cache, new_mask)
                    rows += new_rows
                else:
                    step = torch.tensor([[r["out"][-1]] for r in rows], device=device)
                    positions = torch.tensor([[r["pos"]] for r in rows], device=device)
                    mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
                    with attending(active_layers):
                        logits = self.model(input_ids=step, attention_mask=mask, position_ids=positions,
                                            past_key_values=cache, use_cache=True).logits[:, -1, :]
                    for row, token in zip(rows, self._pick(rows, logits)):
                        row["pos"] += 1
                        row["out"].append(token)
                keep = []
                for k, row in enumerate(rows):
                    if row["out"][-1] in stop or len(row["out"]) >= self.settings.max_new_tokens:
                        reply = row["request"].bind(self._finished(row, stop))
                        replies[reply.key] = reply
                        if on_reply is not None:
                            on_reply(reply)
                    else:
                        keep.append(k)
                if len(keep) < len(rows):
                    rows = [rows[k] for k in keep]
                    if rows:
                        select = torch.tensor(keep, device=device)
                        cache.batch_select_indices(select)
                        mask = mask[select]
                        cache, mask = _compact(cache, mask)
                    else:
                        cache = mask = None
        return [replies[r.key] for r in requests]

    def _take_group(self, waiting: list[Request], free: int) -> list[Request]:
        """Up to `free` waiting prompts of the next one's prefix group, in order (`waiting` is popped from its end)."""
        group = self._group_of.get(waiting[-1].key)
        taken: list[Request] = []
        for i in range(len(waiting) - 1, -1, -1):
            if len(taken) == free:
                break
            if self._group_of.get(waiting[i].key) == group:
                taken.append(waiting[i])
        chosen = {id(r) for r in taken}
        waiting[:] = [r for r in waiting if id(r) not in chosen]
        return taken

    def _admission_prefix(self, admitted: Sequence[Request]) -> tuple[int, ...]:
        """The token prefix these prompts start from the cache of: their group's, less at least one token each keeps
        to prefill (its logits give the first reply token)."""
        if getattr(self.model.config, "_attn_implementation", None) != SHARED_PREFIX_ATTENTION:
            return ()  # attention that cannot see a prefix held apart (eager, flash...): each row prefills it all
        ids = [self._ids(r) for r in admitted]
        shared = common_prefix(ids, min(min(len(r) for r in ids) - 1, self._shareable(ids[0], admitted[0].key)))
        return tuple(ids[0][:shared])

    def _prefix_layers(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """The prefix's per-layer keys and values for the attention (None: no prefix, plain attention)."""
        return prefix_layers(self._prefix_kv(prefix)) if prefix else None

    def _admit(self, admitted: Sequence[Request], prefix: tuple[int, ...]
               ) -> tuple[list[dict[str, Any]], Any, torch.Tensor, torch.Tensor]:
        """Prefill newly admitted prompts after their shared `prefix` (held once, see shared_prefix.py) in a cache
        of their own: their slots (in cache order), that cache, its mask, and the logits of each one's first reply
        token. Prompts of very different lengths are prefilled in separate calls (see length_groups) and their
        caches joined, so a long multi-turn suffix does not pad every short one to its length."""
        shared = len(prefix)
        layers = self._prefix_layers(prefix)  # computed once per prefix, before any reply's clock starts
        started = time.perf_counter()  # after the one-time shared prefill: each reply's clock starts here
        ids = [self._ids(r) for r in admitted]
        rows: list[dict[str, Any]] = []
        cache: Any = None
        mask: torch.Tensor | None = None
        logits: list[torch.Tensor] = []
        for group in length_groups(list(zip(admitted, ids)), [len(i) - shared for i in ids]):
            part_cache, part_mask, part_logits = self._prefill_suffixes([i[shared:] for _, i in group], shared, layers)
            cache, mask = _join_rows(cache, mask, part_cache, part_mask)
            logits.append(part_logits)
            rows += [{"request": r, "ids": i, "prefix": shared, "pos": len(i), "out": [], "started": started,
                      "matcher": self.constraint.matcher(r) if self.constraint is not None else None} for r, i in group]
        return rows, cache, mask, torch.cat(logits)

    def _prefill_suffixes(self, suffixes: Sequence[Sequence[int]], shared: int,
                          layers: list[tuple[torch.Tensor, torch.Tensor]] | None) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One forward over `suffixes` (left-padded to one length) after `shared` prefix positions: their cache, its
        mask, and the logits at each one's last position (the LM head runs on that position only)."""
        device = self.model.device
        cache = reserved_cache(self.model.config)
        span = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (span - len(s)) + list(s) for s in suffixes], device=device)
        mask = torch.tensor([[0] * (span - len(s)) + [1] * len(s) for s in suffixes], device=device)
        positions = torch.tensor([[shared] * (span - len(s)) + list(range(shared, shared + len(s))) for s in suffixes],
                                 device=device)
        with attending(layers):
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1, :]
        return cache, mask, logits

    def _pick(self, rows: Sequence[dict[str, Any]], logits: torch.Tensor) -> list[int]:
        """Each row's greedy next token; under constrained decoding, the best one its grammar allows."""
        if self.constraint is None:
            return logits.argmax(dim=-1).tolist()
        matchers = [row["matcher"] for row in rows]
        logits = logits.float()
        self.constraint.mask(matchers, logits)
        tokens = logits.argmax(dim=-1).tolist()
        self.constraint.take(matchers, tokens)
        return tokens

    def _finished(self, row: dict[str, Any], stop: set[int]) -> Reply:
        tokens = row["out"]
        end = next((i + 1 for i, t in enumerate(tokens) if t in stop), None)
        kept = tokens[:end] if end else tokens
        return Reply(text=self.tokenizer.decode(kept, skip_special_tokens=True), constrained=self.constraint is not None,
                     latency_s=time.perf_counter() - row["started"],
                     usage={"prompt_tokens": len(row["ids"]), "completion_tokens": len(kept),
                            "prefix_tokens_reused": row["prefix"]},
                     truncated=end is None and len(kept) >= self.settings.max_new_tokens)

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        import peft
        import transformers

        return {
            "backend": self.name,
            "base_model": self.base_model,
            "base_model_weights_sha256": model_weights_sha256(self.base_model),
            "base_model_provenance": self.provenance,
            "adapter": self.adapter.essentials() if self.adapter else None,
            "tokenizer": self._tokenizer_source,
            "chat_template_sha256": _sha256_text(self.tokenizer.chat_template),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device,
            "load_in_4bit": self.load_in_4bit,
            "generation": {
                "do_sample": False, "max_new_tokens": self.settings.max_new_tokens,
                "batch_size": self.settings.batch_size, "padding_side": "left",
                "stop_token_ids": self.stop_ids, "pad_token_id": self.tokenizer.pad_token_id,
                "date_source": "case now", "mode": self.mode, "adapter_merged": self.settings.merge_adapter,
                "prefix_cache": self.mode == "dynamic" and self.settings.prefix_cache,
                "decoding": self.settings.decoding,
                **({"constraint": constraint_library()} if self.constraint is not None else {}),
            },
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        }

    def latency_conditions(self) -> dict[str, Any]:
        conditions: dict[str, Any] = {"batch_size": self.settings.batch_size, "generation_mode": self.mode}
        if self.warmup_s is not None:
            conditions["warmup_s_not_in_latency"] = round(self.warmup_s, 3)
        if self.prefill_s:
            conditions["shared_prefix_prefill_s_not_in_latency"] = round(self.prefill_s, 3)
        conditions["note"] = f"each reply's latency is its whole batch's generate() time; {flag('batch_size')} 1 for per-reply time"
        return conditions

    def describe(self) -> str:
        adapter = f" + adapter {self.adapter.path} (sha256 {sha256_file(self.adapter.weights)[:12]})" if self.adapter else ""
        shipped = (f" (the shipped {self.provenance['model']}, {self.provenance['weights']})" if self.provenance else "")
        return (f"{self.name}: {self.base_model}{shipped}{adapter} on "
                f"{self.device}/{str(self.dtype).removeprefix('torch.')}")

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @classmethod
    def from_options(cls, name: str, options: BackendOptions) -> "LocalBackend":
        adapter = options.require("adapter", name, "DIR (a LoRA adapter folder)") if name == "local-adapter" else None
        base = options.get("base_model") or (None if adapter else shipped_model())
        return cls(
            base, adapter,
            settings=GenerationSettings(
                max_new_tokens=int(options.get("max_new_tokens", GenerationSettings.max_new_tokens)),
                batch_size=int(options.get("batch_size", GenerationSettings.batch_size)),
                mode=options.get("generation_mode") or GenerationSettings.mode,
                merge_adapter=bool(options.get("merge_adapter", False)),
                decoding=options.get("decoding") or "free",
            ),
            device=options.get("device"), dtype=options.get("dtype"),
            load_in_4bit=bool(options.get("load_in_4bit", False)),
            allow_base_mismatch=bool(options.get("allow_base_mismatch", False)),
        )


class ReservedLayer(DynamicLayer):
    """A KV cache layer that writes each new token into room reserved ahead, instead of concatenating the whole
    cache again at every step (DynamicLayer's torch.cat: more than half of a CPU decoding step at batch 8 with a
    1,150-token context). `keys`/`values` are views of the filled part, so attention sees exactly the same values."""

    reserve = 256  # tokens of room added whenever the buffer is full

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._n, self._k, self._v = 0, None, None
        n_new = key_states.shape[-2]
        if self._k is None or self._n + n_new > self._k.shape[-2] or self._k.shape[0] != key_states.shape[0]:
            self._grow(key_states, self._n + n_new + self.reserve)
        self._k[:, :, self._n:self._n + n_new] = key_states
        self._v[:, :, self._n:self._n + n_new] = value_states
        self._n += n_new
        self._views()
        return self.keys, self.values

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]

    def _grow(self, like: torch.Tensor, capacity: int) -> None:
        b, h, _, d = like.shape
        k, v = like.new_empty((b, h, capacity, d)), like.new_empty((b, h, capacity, d))
        if self._n:
            k[:, :, :self._n], v[:, :, :self._n] = self.keys, self.values
        self._k, self._v = k, v

    def fill(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Replace the layer's content with `keys`/`values` (rows joined or columns dropped outside)."""
        self._n, self._k, self._v = 0, None, None
        self._grow(keys, keys.shape[-2] + self.reserve)
        n = keys.shape[-2]
        self._k[:, :, :n], self._v[:, :, :n] = keys, values
        self._n = n
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._k, self._v = self._k.repeat_interleave(repeats, dim=0), self._v.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()


def _join_rows(cache: Any, mask: torch.Tensor | None, new: Any, new_mask: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Two caches of rows side by side in one: the shorter one is left-padded with masked zeros (attention over
    a row's own valid entries, in their order, is unchanged)."""
    if cache is None:
        return new, new_mask
    length, new_length = mask.shape[1], new_mask.shape[1]
    target = max(length, new_length)
    a_mask = torch.cat([mask.new_zeros((mask.shape[0], target - length)), mask], dim=1)
    b_mask = torch.cat([new_mask.new_zeros((new_mask.shape[0], target - new_length)), new_mask], dim=1)
    for a, b in zip(cache.layers, new.layers):
        a.fill(torch.cat([_left_pad(a.keys, target), _left_pad(b.keys, target)], dim=0),
               torch.cat([_left_pad(a.values, target), _left_pad(b.values, target)], dim=0))
    return cache, torch.cat([a_mask, b_mask], dim=0)


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - tensor.shape[-2]
    if missing <= 0:
        return tensor
    b, h, _, d = tensor.shape
    return torch.cat([tensor.new_zeros((b, h, missing, d)), tensor], dim=-2)


def _compact(cache: Any, mask: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Drop the leading cache columns no remaining row attends to (left behind by rows that left)."""
    used = mask.any(dim=0).nonzero()
    first = int(used[0]) if len(used) else 0
    if first < 64:  # not worth a copy
        return cache, mask
    for layer in cache.layers:
        layer.fill(layer.keys[:, :, first:], layer.values[:, :, first:])  # fill copies into a new buffer
    return cache, mask[:, first:]


def length_groups(items: Sequence[Any], lengths: Sequence[int], waste: float = 1.3) -> list[list[Any]]:
    """`items` split into groups of similar `lengths` (longest first) that are prefilled together: a group takes the
    next item while padding every member to the group's longest costs at most `waste` times their real tokens."""
    order = sorted(range(len(items)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[groups[-1][0]] * (len(groups[-1]) + 1) <= waste * (
                sum(lengths[j] for j in groups[-1]) + lengths[i]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return [[items[i] for i in g] for g in groups]


def common_prefix(rows: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """How many leading tokens every row shares (at most `limit`)."""
    shared = min(len(r) for r in rows) if limit is None else limit
    for r in rows[1:]:
        shared = next((k for k in range(shared) if r[k] != rows[0][k]), shared)
    return shared


def reserved_cache(config: Any) -> DynamicCache:
    """A DynamicCache whose layers are ReservedLayers (the model's config decides how many)."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer() for _ in cache.layers]
    return cache


def shipped_model() -> str:
    """The embedded default of `--model=local-base` without `--base-model`: the packaged real model
    (harness.models), converted on first use and cached."""
    from harness.models import DEFAULT_MODEL, ModelUnavailable, convert

    try:
        return str(convert(DEFAULT_MODEL))
    except ModelUnavailable as exc:
        raise BackendError(f"--model=local-base without {flag('base_model')} evaluates the shipped {DEFAULT_MODEL}: {exc}") from None


def _sha256_text(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None
