"""The trainer: one job, every default at the top, a linear main(job).

    python -m training.train --data data/v1 --out adapters/run-7                 # the plan's recipe
    python -m training.train --data data/v1 --engine unsloth --load-in-4bit     # QLoRA on a CUDA GPU

Engines: `unsloth` (FastLanguageModel, 4-bit QLoRA) where CUDA and unsloth are installed, `trl`
(transformers + PEFT + TRL's SFTTrainer) everywhere; `auto` picks. Both train on the same
pre-tokenized examples with labels on the assistant turns only (training/tokenize.py). The
adapter folder gets the adapter and tokenizer (never a merged model), job.json, metrics.csv,
loss.png and diagnosis.txt.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from harness.hashing import model_weights_sha256, sha256_file
from harness.report import atomic_write_text
from harness.suite import resolve_suite
from training.data.validate import read_examples
from training.tokenize import IGNORE, TrainingRefused, check_template_parity, ensure_pad, tokenize_example

UNSLOTH_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ENGINES = ("auto", "trl", "unsloth")
LOSSES = ("labelled", "trl")
LOSS_AVERAGES = ("token", "example")
METHODS = ("lora", "full")


@dataclass(frozen=True)
class Job:
    """Every setting of a run; the defaults are the plan's recipe for Llama 3.2 3B."""

    data: str = "data/v1"
    out: str = "adapters/run"
    base_model: str = "unsloth/Llama-3.2-3B-Instruct"
    engine: str = "auto"
    method: str = "lora"            # "full" trains every weight (the demo's stand-in for instruct pre-training)
    load_in_4bit: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    epochs: float = 2.0
    max_steps: int = -1             # > 0 overrides epochs
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 4
    max_length: int = 2048
    warmup_ratio: float = 0.03      # of all steps (transformers 5: a float warmup_steps < 1)
    lr_scheduler: str = "linear"
    logging_steps: int = 5
    eval_steps: int = 25
    seed: int = 3407
    dtype: str | None = None        # default: bfloat16 on CUDA and on CPUs with bf16 instructions, else float32
    device: str | None = None       # default: cuda when available
    gradient_checkpointing: bool | None = None  # default: on for CUDA, off on CPU (30 % slower there, no memory need)
    # "labelled": the vocabulary head only where labels are (label_positions_loss); "trl": TRL's chunked kernel
    loss: str = "labelled"
    # "token": every labelled token weighs the same (the causal-LM mean); "example": each reply's mean, then the mean
    # over replies, so a short plain-text reply (whose one deciding token is "stop here, no call") weighs as much as a
    # 60-token call. Only with loss "labelled".
    loss_average: str = "token"
    # False: the prefix every row of a batch shares (the system prompt) runs without autograd, its KV cache a
    # constant: the loss is the same, and its gradient drops only the paths through the prefix's keys and values
    # (the adapter still shapes them in the forward). About a quarter of a CPU step (benchmarks/training_throughput.py).
    prefix_gradient: bool = True
    # Batches of rows of about the same length (transformers' LengthGroupedSampler): less padding after the shared
    # prefix (on the demo's data, 40 % of the rows' own tokens were padding in random batches, 1 % when grouped).
    group_by_length: bool = False
    # The rows' own parts after the shared prefix run as one row without their padding (label_positions_loss):
    # the same loss and gradients as the padded batch, for fewer tokens. False: the padded batch.
    pack_rows: bool = True
    # LoRA dropout's keep-masks drawn as 16-bit integers, four to one draw of the generator (training.kernels:
    # p rounded to 1/65536), not one float draw per element: on a CPU the masks took a fifth of a step. trl engine.
    fast_dropout: bool = True
    # False only for a curriculum stage whose data is deliberately not the suite's prompt (the demo's stand-in first
    # reads conversations without the system prompt); job.json records it, and nothing is evaluated after it.
    prompt_check: bool = True
    eval_golden: bool = False
    golden: str = "golden"          # the suite (folder of case files) the data was built for, and --eval-golden runs
    eval_max_new_tokens: int = 256

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Job":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown job option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        job = cls(**values)
        if job.engine not in ENGINES or job.method not in METHODS or job.loss not in LOSSES:
            raise ValueError(f"engine must be one of {ENGINES}, method one of {METHODS} and loss one of {LOSSES}")
        if job.loss_average not in LOSS_AVERAGES:
            raise ValueError(f"loss_average must be one of {LOSS_AVERAGES}, not {job.loss_average!r}")
        if (job.loss_average == "example" or not job.prefix_gradient) and job.loss != "labelled":
            raise ValueError("loss_average 'example' and no prefix_gradient need loss 'labelled' (TRL's kernel "
                             "averages over tokens and runs every row whole)")
        return job


# -- engines ---------------------------------------------------------------------------------------

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("unsloth") is not None


def pick_engine(requested: str, method: str = "lora") -> str:
    """auto: unsloth with CUDA and unsloth installed (LoRA only), else trl. An explicit unsloth without them is an error."""
    if requested == "trl" or (requested == "auto" and (method == "full" or not (cuda_available() and unsloth_installed()))):
        return "trl"
    if method == "full":
        raise TrainingRefused("--method full runs on the trl engine only")
    if not cuda_available():
        raise TrainingRefused("--engine unsloth needs a CUDA GPU; use --engine trl (or auto) here")
    if not unsloth_installed():
        raise TrainingRefused("--engine unsloth needs unsloth: pip install -e '.[gpu]'")
    return "unsloth"


def resolve_device_dtype(job: Job) -> tuple[str, str]:
    """CUDA + bf16 where available; on a CPU, bf16 where it has bf16 instructions, else fp32.

    Measured on SmolLM2-135M, LoRA, 2 cores with avx512_bf16: bf16 trains 1.5x faster than fp32 (decoding is
    the other way round, so the harness's local backend keeps fp32 on a CPU)."""
    from harness.backends.local import pick_device_dtype

    dtype = job.dtype
    if dtype is None and (job.device or "cpu") == "cpu" and not cuda_available() and cpu_has_bf16():
        dtype = "bfloat16"
    device, torch_dtype = pick_device_dtype(job.device, dtype)
    return device, str(torch_dtype).removeprefix("torch.")


def cpu_has_bf16() -> bool:
    """Native bf16 matrix instructions (x86 avx512_bf16 or amx_bf16); without them bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    words = set(flags.split())
    return any(f in words for f in ("avx512_bf16", "amx_bf16"))


def unsloth_kwargs(job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
    """(FastLanguageModel.from_pretrained kwargs, get_peft_model kwargs) for a job."""
    load = {"model_name": job.base_model, "max_seq_length": job.max_length, "load_in_4bit": job.load_in_4bit, "dtype": None}
    targets = list(UNSLOTH_TARGETS) if job.target_modules == "all-linear" else job.target_modules.split(",")
    peft = {"r": job.lora_r, "lora_alpha": job.lora_alpha, "lora_dropout": job.lora_dropout, "target_modules": targets,
            "bias": "none", "use_gradient_checkpointing": "unsloth", "random_state": job.seed}
    return load, peft


def load_unsloth(job: Job) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel  # must be imported before transformers/trl to patch them

    load, peft = unsloth_kwargs(job)
    model, tokenizer = FastLanguageModel.from_pretrained(**load)
    return FastLanguageModel.get_peft_model(model, **peft), tokenizer


def load_trl(job: Job, device: str, dtype: str) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config or None)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job.base_model)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if job.load_in_4bit:
        if not device.startswith("cuda"):
            raise TrainingRefused("--load-in-4bit needs a CUDA GPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=getattr(torch, dtype))
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(job.base_model, **kwargs)
    if job.method == "full":
        return model, tokenizer, None
    from peft import LoraConfig

    targets: Any = job.target_modules if job.target_modules == "all-linear" else job.target_modules.split(",")
    config = LoraConfig(r=job.lora_r, lora_alpha=job.lora_alpha, lora_dropout=job.lora_dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    return model, tokenizer, config


# -- data ------------------------------------------------------------------------------------------

def read_split(folder: Path, name: str) -> list[dict[str, Any]]:
    """A split's examples through the data module's own reader; a line that is not JSON is an error."""
    path = folder / f"{name}.jsonl"
    if not path.is_file():
        return []
    try:
        return read_examples(path)
    except ValueError as exc:
        raise TrainingRefused(str(exc)) from None


def tokenize_split(tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
                   stop_ids: list[int]) -> tuple[list[dict[str, list[int]]], list[str]]:
    """Token rows, and the groups of examples left out for being longer than max_length (never truncated)."""
    rows, too_long = [], []
    for ex in examples:
        tok = tokenize_example(tokenizer, ex, stop_ids)
        if len(tok.input_ids) > max_length:
            too_long.append(f"{ex.get('group')} ({len(tok.input_ids)} tokens)")
            continue
        rows.append({"input_ids": tok.input_ids, "labels": tok.labels})
    return rows, too_long


# -- the loss --------------------------------------------------------------------------------------

def label_positions_loss(model: Any, inputs: Mapping[str, Any], num_items_in_batch: Any = None,
                         share_prefix: bool = True, per_example: bool = False, accumulation_steps: int = 1,
                         prefix_gradient: bool = True, pack: bool = True) -> Any:
    """Mean next-token cross-entropy over the labelled positions, with the vocabulary head run only there.

    Assistant-only labels cover about 5 % of a golden-format example (the ~1,000-token system prompt is never a
    label), so projecting every position onto a 49k-word vocabulary wastes most of the head's work. The model's own
    `logits_to_keep` keeps the columns where any row has a label; the value is the standard causal-LM loss (sum over
    labelled tokens / their count, or / num_items_in_batch under gradient accumulation, as Trainer counts them).

    With share_prefix, the leading tokens every row of the batch has in common (the system prompt up to its date,
    which comes last) run through the model once, and every row continues from that one KV cache: the same values
    and the same gradients as running each row whole (the prefix's gradient is the sum over rows), for a fraction
    of the work. Only LoRA dropout differs: its mask over the prefix is drawn once for the batch, not per row.

    With pack (and a shared prefix), the rows' own parts run as one row without their padding: each part attends
    to the prefix and to itself only (a block-causal 4D mask) at its own positions, so the values are the padded
    batch's; on the demo's data 40 % of those parts' tokens were padding.

    With per_example, each row's labelled tokens are averaged first and the rows' means then averaged (each
    micro-batch weighted alike under gradient accumulation: divided by accumulation_steps where Trainer does not).
    """
    import torch
    import torch.nn.functional as F

    labels, ids = inputs["labels"], inputs["input_ids"]
    targets = labels[:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)  # logits at position i predict token i + 1
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    shared = shared_prefix_length(ids, labels, inputs.get("attention_mask")) if share_prefix else 0
    if shared >= MIN_SHARED_PREFIX:
        with torch.set_grad_enabled(prefix_gradient and torch.is_grad_enabled()):
            prefix = model(input_ids=ids[:1, :shared], use_cache=True).past_key_values
        mask = inputs.get("attention_mask")
        if pack and _right_padded(mask, shared) and _attention(model) in ("sdpa", "eager"):
            return _packed_loss(model, ids, labels, mask, shared, prefix, num_items_in_batch, per_example,
                                accumulation_steps)
        for layer in prefix.layers:
            layer.keys = layer.keys.expand(ids.shape[0], -1, -1, -1)
            layer.values = layer.values.expand(ids.shape[0], -1, -1, -1)
        positions = torch.arange(shared, ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        forward = {**forward, "input_ids": ids[:, shared:], "past_key_values": prefix, "position_ids": positions}
        logits = model(**forward, use_cache=True, logits_to_keep=keep - shared).logits
    else:
        logits = model(**forward, use_cache=False, logits_to_keep=keep).logits
    picked = targets[:, keep]
    if per_example:
        each = F.cross_entropy(logits.float().transpose(1, 2), picked, ignore_index=IGNORE, reduction="none")
        rows = torch.arange(picked.shape[0], device=picked.device)[:, None].expand_as(picked)
        return _mean_of_rows(each.flatten(), picked.flatten(), rows.flatten(), picked.shape[0],
                             accumulation_steps if num_items_in_batch is not None else 1)
    return _mean_of_tokens(logits.flatten(0, 1), picked.flatten(), num_items_in_batch)


def _mean_of_tokens(logits: Any, targets: Any, num_items_in_batch: Any) -> Any:
    """Sum of the labelled tokens' cross-entropy over their count (or Trainer's count across micro-batches)."""
    import torch
    import torch.nn.functional as F

    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


def _mean_of_rows(losses: Any, targets: Any, rows: Any, n_rows: int, divisor: int) -> Any:
    """Each row's mean over its labelled tokens, then the mean over the rows that have any."""
    import torch

    labelled = (targets != IGNORE).to(losses.dtype)
    sums = torch.zeros(n_rows, dtype=losses.dtype, device=losses.device).index_add(0, rows, losses * labelled)
    counts = torch.zeros(n_rows, dtype=losses.dtype, device=losses.device).index_add(0, rows, labelled)
    means = sums[counts > 0] / counts[counts > 0]
    return means.sum() / (len(means) or 1) / divisor


def _attention(model: Any) -> str:
    """The model's attention implementation: a custom 4D mask reaches SDPA and eager attention as given."""
    inner = getattr(model, "module", model)  # under DistributedDataParallel
    return str(getattr(inner.config, "_attn_implementation", None) or "eager")


def _right_padded(mask: Any, shared: int) -> bool:
    """Whether every row's own part is its tokens and then only padding (as the collator pads)."""
    if mask is None:
        return True
    part = mask[:, shared:]
    return bool((part == (part.cumprod(dim=1))).all())


def _packed_loss(model: Any, ids: Any, labels: Any, mask: Any, shared: int, prefix: Any, num_items_in_batch: Any,
                 per_example: bool, accumulation_steps: int) -> Any:
    """label_positions_loss over the rows' own parts packed into one row after the prefix's KV cache."""
    import torch
    import torch.nn.functional as F

    n, width = ids.shape
    device = ids.device
    lengths = (mask[:, shared:].sum(dim=1) if mask is not None
               else torch.full((n,), width - shared, device=device)).long()
    own = torch.arange(width - shared, device=device)[None, :] < lengths[:, None]
    packed_ids = ids[:, shared:][own][None]
    rows = torch.arange(n, device=device).repeat_interleave(lengths)
    positions = (torch.arange(width - shared, device=device)[None, :].expand(n, -1) + shared)[own][None]
    # the target of position i is the next token of the same row (none for a row's last token)
    following = torch.cat([labels[:, shared + 1:], torch.full_like(labels[:, :1], IGNORE)], dim=1)
    following = torch.where(own.roll(-1, dims=1) & own, following, torch.full_like(following, IGNORE))
    targets = following[own]
    keep = (targets != IGNORE).nonzero().squeeze(1)
    same_row = rows[:, None] == rows[None, :]
    causal = torch.arange(len(rows), device=device)[None, :] <= torch.arange(len(rows), device=device)[:, None]
    block = torch.cat([torch.ones(len(rows), shared, dtype=torch.bool, device=device), same_row & causal], dim=1)
    if _attention(model) == "eager":  # an additive mask there; SDPA takes the boolean one
        dtype = getattr(model, "module", model).dtype
        block = torch.zeros(block.shape, dtype=dtype, device=device).masked_fill(~block, torch.finfo(dtype).min)
    logits = model(input_ids=packed_ids, past_key_values=prefix, position_ids=positions,
                   attention_mask=block[None, None], use_cache=True, logits_to_keep=keep).logits[0]
    picked = targets[keep]
    if per_example:
        each = F.cross_entropy(logits.float(), picked, ignore_index=IGNORE, reduction="none")
        return _mean_of_rows(each, picked, rows[keep], n, accumulation_steps if num_items_in_batch is not None else 1)
    return _mean_of_tokens(logits, picked, num_items_in_batch)


MIN_SHARED_PREFIX = 32  # tokens; below it a second forward call costs more than it saves


def shared_prefix_length(ids: Any, labels: Any, mask: Any = None) -> int:
    """How many leading columns every row shares: the same ids, none padded, none a label, and ending before the
    first column whose logits a label needs (so every logit the loss reads comes from the rows' own forward)."""
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0)
    if mask is not None:
        same &= (mask == 1).all(dim=0)
    labelled = (labels != IGNORE).any(dim=0).nonzero()
    limit = int(labelled[0]) - 1 if len(labelled) else ids.shape[1] - 1
    differs = (~same[:limit]).nonzero()
    return int(differs[0]) if len(differs) else max(limit, 0)


def _sampling(config_class: type, by_length: bool) -> dict[str, Any]:
    """The length-grouped sampler in the spelling of the installed transformers (5.24: train_sampling_strategy;
    the GPU extra's 5.17: the group_by_length switch)."""
    if not by_length:
        return {}
    names = {f.name for f in fields(config_class)}
    return {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names else {"group_by_length": True}


def label_positions_trainer(base: type, per_example: bool = False, prefix_gradient: bool = True,
                            pack: bool = True) -> type:
    """SFTTrainer with label_positions_loss: TRL's chunked log-prob kernel (built for GPU memory) also computes the
    entropy and top-1 of every position and, measured on SmolLM2-135M on 2 CPU cores, spent half of each step there."""

    def compute_loss(self: Any, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        loss = label_positions_loss(model, inputs, num_items_in_batch,
                                    share_prefix=not self.args.gradient_checkpointing,  # checkpointing drops caches
                                    per_example=per_example, prefix_gradient=prefix_gradient, pack=pack,
                                    accumulation_steps=getattr(self, "current_gradient_accumulation_steps", 1))
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # like Trainer: the count is over every rank, DDP averages
        return (loss, None) if return_outputs else loss

    return type("LabelPositionsSFTTrainer", (base,), {"compute_loss": compute_loss})


# -- metrics, plot, diagnosis ----------------------------------------------------------------------

class MetricsLog:
    """A TrainerCallback body: one CSV row per log event (train or eval), with approximate tokens/s."""

    def __init__(self, path: Path, tokens_per_step: float) -> None:
        self.path, self.tokens_per_step = path, tokens_per_step
        self.rows: list[dict[str, Any]] = []
        self._last = (0, time.perf_counter())

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return  # with several processes, one writes the log (each step's tokens are counted for all below)
        logs = logs or {}
        step, now = state.global_step, time.perf_counter()
        row = {"step": step, "epoch": round(state.epoch or 0.0, 4), "train_loss": logs.get("loss"),
               "eval_loss": logs.get("eval_loss"), "learning_rate": logs.get("learning_rate"), "tokens_per_s": None}
        if "loss" in logs:
            last_step, last_time = self._last
            if step > last_step and now > last_time:
                tokens = (step - last_step) * self.tokens_per_step * max(1, getattr(args, "world_size", 1))
                row["tokens_per_s"] = round(tokens / (now - last_time), 1)
            self._last = (step, now)
        if row["train_loss"] is None and row["eval_loss"] is None:
            return
        if self.rows and all(self.rows[-1][k] == row[k] for k in ("step", "train_loss", "eval_loss")):
            return  # the final evaluate() repeats the last step's eval
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "epoch", "train_loss", "eval_loss", "learning_rate", "tokens_per_s"])
            writer.writeheader()
            writer.writerows(self.rows)


def diagnose(rows: list[dict[str, Any]]) -> str:
    """The plan's table: healthy; overfitting when the eval/train gap grows; underfitting or a format
    problem when both losses stay above 1.5."""
    train = [(r["step"], r["train_loss"]) for r in rows if r["train_loss"] is not None]
    evals = [(r["step"], r["eval_loss"]) for r in rows if r["eval_loss"] is not None]
    if not train:
        return "no training loss was logged (too few steps for logging_steps?)"
    last_train = train[-1][1]
    if not evals:
        return f"final train loss {last_train:.3f}; no eval loss (no val split), so overfitting cannot be judged"
    last_eval, best_eval = evals[-1][1], min(e for _, e in evals)

    def train_near(step: int) -> float:
        return min(train, key=lambda t: abs(t[0] - step))[1]

    first_gap = evals[0][1] - train_near(evals[0][0])
    last_gap = last_eval - train_near(evals[-1][0])
    if last_train > 1.5 and last_eval > 1.5:
        return (f"underfitting or a format problem: train {last_train:.3f} and eval {last_eval:.3f} are both above 1.5; "
                "check that every example is correctly formatted and the chat template is right")
    if len(evals) > 1 and last_gap > max(2 * first_gap, 0.1) and last_eval > best_eval * 1.1:
        return (f"overfitting: the eval/train gap grew from {first_gap:.3f} to {last_gap:.3f} and eval loss rose from "
                f"{best_eval:.3f} to {last_eval:.3f}; add diverse examples, train fewer epochs or lower the learning rate")
    if last_gap >= 0.7 and last_eval > 2 * last_train:
        return (f"overfitting: train {last_train:.3f} but eval {last_eval:.3f} (the plan's 'train 0.1, eval 0.8+'): "
                "the model memorises the training phrasings; add diverse examples or train less")
    return f"healthy: train {last_train:.3f}, eval {last_eval:.3f} (gap {last_gap:+.3f})"


# -- provenance ------------------------------------------------------------------------------------

def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "unsloth", "bitsandbytes"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# -- the run ---------------------------------------------------------------------------------------

def main(job: Job) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    out, data = Path(job.out), Path(job.data)
    engine = pick_engine(job.engine, job.method)
    if job.eval_golden and not job.prompt_check:  # refused before any model is loaded
        raise TrainingRefused("--no-prompt-check trains on prompts the harness never sends: it cannot --eval-golden")
    if engine == "unsloth" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingRefused("the unsloth engine trains on one GPU; with accelerate launch / torchrun use --engine trl")
    if engine == "unsloth":
        # Unsloth patches transformers, TRL and PEFT as it is imported: it must come before any of them
        # (resolve_device_dtype imports transformers), or it warns and runs unpatched.
        import unsloth  # noqa: F401
    device, dtype = resolve_device_dtype(job)
    train_examples, val_examples = read_split(data, "train"), read_split(data, "val")
    if not train_examples:
        raise TrainingRefused(f"{data / 'train.jsonl'}: no training examples (build them: python -m training.data build --out {data})")

    # 1. model and tokenizer
    if engine == "unsloth":
        model, tokenizer = load_unsloth(job)
        peft_config = None
    else:
        model, tokenizer, peft_config = load_trl(job, device, dtype)

    # 2. refuse what would train something else than the harness evaluates
    ensure_pad(tokenizer)
    if job.prompt_check:
        check_template_parity(tokenizer, train_examples, resolve_suite([suite_folder(job)]))  # the suite the data is for
    from harness.backends.local import stop_token_ids

    stop_ids = stop_token_ids(tokenizer, model)
    train_rows, too_long = tokenize_split(tokenizer, train_examples, job.max_length, stop_ids)
    val_rows, val_too_long = tokenize_split(tokenizer, val_examples, job.max_length, stop_ids)
    if too_long or val_too_long:
        print(f"left out {len(too_long) + len(val_too_long)} examples longer than max_length {job.max_length} "
              f"(not truncated): {', '.join((too_long + val_too_long)[:5])}", file=sys.stderr)

    if not train_rows:
        raise TrainingRefused(f"every training example is longer than max_length {job.max_length} (e.g. {too_long[0]}): "
                              "raise --max-length")

    # 3. trainer
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    out.mkdir(parents=True, exist_ok=True)
    mean_len = sum(len(r["input_ids"]) for r in train_rows) / len(train_rows)
    metrics = MetricsLog(out / "metrics.csv", mean_len * job.batch_size * job.grad_accum)
    callback = type("Metrics", (TrainerCallback,), {"on_log": metrics.on_log})()
    checkpointing = job.gradient_checkpointing if job.gradient_checkpointing is not None else device.startswith("cuda")
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="trainer-"), save_strategy="no", report_to="none", seed=job.seed,
        num_train_epochs=job.epochs, max_steps=job.max_steps, learning_rate=job.learning_rate,
        per_device_train_batch_size=job.batch_size, per_device_eval_batch_size=job.batch_size,
        gradient_accumulation_steps=job.grad_accum, warmup_steps=job.warmup_ratio, lr_scheduler_type=job.lr_scheduler,
        logging_steps=job.logging_steps, eval_strategy="steps" if val_rows else "no", eval_steps=job.eval_steps,
        max_length=job.max_length, bf16=dtype == "bfloat16", fp16=dtype == "float16",
        gradient_checkpointing=checkpointing, use_cpu=device == "cpu", dataloader_num_workers=0,
        **_sampling(SFTConfig, job.group_by_length),
    )
    # Unsloth brings its own fused loss; the trl engine takes the head-only-where-labelled one by default
    if engine == "unsloth" and (job.loss_average != "token" or not job.prefix_gradient):
        raise TrainingRefused("loss_average 'example' and no prefix_gradient are the trl engine's loss; Unsloth "
                              "brings its own")
    labelled = job.loss == "labelled" and engine == "trl"
    trainer_class = label_positions_trainer(SFTTrainer, job.loss_average == "example", job.prefix_gradient,
                                            job.pack_rows) if labelled else SFTTrainer
    trainer = trainer_class(
        model=model, args=config, processing_class=tokenizer, peft_config=peft_config,
        train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        callbacks=[callback],
    )
    if job.fast_dropout and engine == "trl":
        from training.kernels import fast_lora_dropout

        fast_lora_dropout(trainer.model)

    # 4. train, then save the adapter (or, for method=full, the model) and the tokenizer
    t0 = time.perf_counter()
    result = trainer.train()
    train_seconds = time.perf_counter() - t0
    # The eval loss at the last step, when the trainer just computed it (the end of a run evaluates), else now
    done = next((h for h in reversed(trainer.state.log_history)
                 if "eval_loss" in h and h.get("step") == trainer.state.global_step), None)
    final_eval = done if done is not None else trainer.evaluate() if val_rows else {}  # logged through the callback
    world_size = trainer.args.world_size  # processes training together (accelerate launch / torchrun), 1 alone
    if not trainer.is_world_process_zero():
        return {"world_size": world_size, "process_index": trainer.args.process_index}  # one copy of the outputs
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    # 5. loss plot, diagnosis, provenance
    from harness.html_report import plot_losses  # the run report draws the same curves from metrics.csv

    (out / "loss.png").write_bytes(plot_losses(metrics.rows, f"{Path(job.out).name}: {engine} {job.method}"))
    diagnosis = diagnose(metrics.rows)
    (out / "diagnosis.txt").write_text(diagnosis + "\n")
    manifest = data / "manifest.json"
    record = {
        "format_version": 1,
        "job": asdict(job),
        "engine": engine, "device": device, "dtype": dtype, "gradient_checkpointing": checkpointing,
        "world_size": world_size,
        "provenance": {
            "data_manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
            "git_commit": git_commit(), "versions": versions(),
            "base_model": job.base_model, "base_model_weights_sha256": model_weights_sha256(job.base_model),
            "host": platform.node(), "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        },
        "data": {"train_examples": len(train_rows), "val_examples": len(val_rows), "mean_sequence_tokens": round(mean_len, 1),
                 "left_out_too_long": too_long + val_too_long,
                 "label_tokens": sum(sum(1 for t in r["labels"] if t != IGNORE) for r in train_rows)},
        "result": {"steps": result.global_step, "train_loss": result.training_loss, "train_seconds": round(train_seconds, 1),
                   "eval_loss": final_eval.get("eval_loss"), "diagnosis": diagnosis},
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
    }
    atomic_write_text(out / "job.json", json.dumps(record, indent=2) + "\n")
    print(f"trained {result.global_step} steps in {train_seconds:.0f} s ({engine}, {job.method}, {device}/{dtype}); "
          f"train loss {result.training_loss:.4f}, eval loss {final_eval.get('eval_loss', float('nan')):.4f}")
    print(f"diagnosis: {diagnosis}")
    print(f"saved to {out}: {', '.join(record['files'])}")

    # 6. optionally, the golden suite on the fresh adapter through the harness's local-adapter backend
    # (golden.json, not job.json: the report's fingerprint holds job.json's hash, which must not change after)
    if job.eval_golden and job.method == "lora":
        record["golden"] = evaluate_golden(job, out, device, dtype)
        atomic_write_text(out / "golden.json", json.dumps(record["golden"], indent=2) + "\n")
    return record


def suite_folder(job: Job) -> Path:
    """The suite the job trains for and is evaluated on (`golden`: the assistant suite's golden/ by default)."""
    golden = Path(job.golden)
    if not golden.exists() and not golden.is_absolute():
        golden = Path(__file__).resolve().parents[1] / golden  # the project's own golden/ when run elsewhere
    return golden


def evaluate_golden(job: Job, adapter: Path, device: str, dtype: str) -> dict[str, Any]:
    """Run the golden suite (or any suite: a program suite by its direct strategy, one request as the adapter was
    trained) on the adapter through the harness's engine; the report under reports/ is traced to job.json by the
    fingerprint."""
    from harness.backends import BackendOptions
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.core.engine import Run
    from harness.core.task import get_task, thresholds
    from harness.report import new_run_id
    from harness.tasks.tool_call.summary import format_table

    golden = suite_folder(job)
    paths = sorted(golden.glob("*.jsonl")) if golden.is_dir() else [golden]
    suite = resolve_suite([golden])
    task = get_task(suite.task)
    loaded = [task.load_cases(p, suite) for p in paths]
    backend = LocalBackend(job.base_model, adapter, device=device, dtype=dtype,
                           settings=GenerationSettings(max_new_tokens=job.eval_max_new_tokens))
    label = "-".join([*([] if suite.task == "tool_call" else [suite.task, *task.settings().values()]), "local-adapter"])
    run = Run(task=task, model="local-adapter", options=BackendOptions({}), thresholds=thresholds(task),
              reports_dir=Path("reports"), run_id=new_run_id(label), suite=suite,
              case_files={path: sha for path, sha, _ in loaded})
    run.start([c for *_, cases in loaded for c in cases], backend=backend)
    run.run_all()
    summary = run.finish()
    print("\n".join(run.summary_lines() or format_table(summary)))
    print(f"gate: {'PASSED' if summary['gate']['passed'] else 'FAILED'}; report: {run.writer.dir / 'summary.json'}")
    return {"run_id": run.run_id, "case_pass_rate": summary["case_pass_rate"], "gate_passed": summary["gate"]["passed"]}


def parse_args(argv: list[str] | None = None) -> Job:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a JSON file of job options (unknown keys are errors); flags override it")
    for f in fields(Job):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool) or f.name in ("gradient_checkpointing",):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default: {default})")
        else:
            kind = {"int": int, "float": float}.get(type(default).__name__, str)
            parser.add_argument(flag, type=kind, default=None, help=f"(default: {default})")
    args = parser.parse_args(argv)  # an unknown flag is an error here
    values: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    try:
        return Job.from_dict(values)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
        raise


def cli(argv: list[str] | None = None) -> int:
    """`python -m training.train`: a refusal is one line and exit 1; any other error keeps its traceback."""
    from harness.backends import BackendError

    job = parse_args(argv)
    try:
        main(job)
    except (TrainingRefused, BackendError) as exc:  # BackendError: the harness refused an option (e.g. --dtype)
        print(f"training refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
