"""A tiny Llama-architecture model and tokenizer, built offline in seconds (tests, demo, GPU smoke).

It is saved with `save_pretrained`, so it loads through exactly the same `from_pretrained` path as
the real Llama 3.2 3B: a byte-level BPE tokenizer trained on the spot with Llama 3's special tokens
and split pattern, the real Llama 3.2 chat template, a pad token distinct from EOS, and a
random-init `LlamaForCausalLM`. It is a stand-in for the real model, not a substitute.

`--shape llama-3.2-3b` builds the full-size stand-in for speed and memory figures where the real weights are
absent: Llama 3.2 3B's exact architecture (28 layers, hidden 3072, GQA 24/8 heads, tied embeddings, llama3
RoPE scaling; 3.21 B parameters) and vocabulary size (128,256, the special tokens at Llama's own ids), random
weights saved in bf16 (6.4 GB), the same offline tokenizer with its vocabulary filled to that size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from harness.chat_format import llama3_template

# Llama 3's pre-tokenizer split (cl100k style). With GPT-2's pattern, "\n\n{" splits differently
# from a prompt ending in "\n\n", so a generation prompt is no longer a token prefix of the
# training sequence (docs/platform-notes.md): keep Llama's.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS, EOS_TEXT, EOT, EOM = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = (BOS, EOS_TEXT, PAD, "<|start_header_id|>", "<|end_header_id|>", EOM, EOT)

_ENGLISH = """\
Please add a task to call John tomorrow about the contract. Remind me to buy milk and bread.
Schedule a meeting with the team on Monday at 10am in the main room. What's the weather like in London?
Send an email to my manager saying I will be late. Show me my open tasks. Mark it done. Delete that event.
Thanks, that's all! Hello, how are you today? What can you help me with? Move it one hour earlier.
I'll add that to your tasks. I'll put that on your calendar. I'll check the weather. I'll send that email.
You're welcome. Happy to help. Sorry, I can't do that, but I can manage your tasks and calendar.
"""


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model; the defaults build in a couple of seconds on one CPU core."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 8192
    seed: int = 0
    tie_word_embeddings: bool = False
    llama3_rope: bool = False  # Llama 3.1/3.2's rope scaling (rope_theta 500000, factor 32)
    llama_special_ids: bool = False  # special tokens at Llama 3's ids (128000...), the vocabulary filled up to them
    dtype: str = "float32"  # the dtype the weights are saved in


SHAPES = {
    "tiny": TinySpec(),
    "llama-3.2-3b": TinySpec(vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                             num_attention_heads=24, num_key_value_heads=8, max_position_embeddings=131072,
                             tie_word_embeddings=True, llama3_rope=True, llama_special_ids=True, dtype="bfloat16"),
}
# Llama 3's special token ids; the rest of 128000..128255 are <|reserved_special_token_N|>.
LLAMA_SPECIAL_IDS = {BOS: 128000, EOS_TEXT: 128001, PAD: 128004, "<|start_header_id|>": 128006,
                     "<|end_header_id|>": 128007, EOM: 128008, EOT: 128009}


def default_corpus() -> list[str]:
    """Text to train the tokenizer on: system prompts for several dates and plain assistant English."""
    from harness.suite import resolve_suite
    from harness.tasks.tool_call.prompt import build_system_prompt

    start = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    suite = resolve_suite()  # the assistant suite's prompts: the demo's stand-in learns their tokens
    prompts = [build_system_prompt(start + timedelta(days=d, hours=d % 7), suite.catalogue, suite.template) for d in range(0, 60, 7)]
    return prompts + _ENGLISH.splitlines() * 20


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE `PreTrainedTokenizerFast` with Llama 3's special tokens and chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    # Like Llama 3's tokenizer: encoding with special tokens (the default) puts <|begin_of_text|> first, so
    # a prompt that already starts with it gets two -- the bug a server-side tokenizer shows in raw mode.
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOT, pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOT, PAD)],
        model_max_length=TinySpec.max_position_embeddings,
    )
    fast.chat_template = llama3_template()
    return fast


def fill_to_llama_ids(tokenizer, vocab_size: int):
    """The tokenizer with Llama 3's layout: its learned tokens first, filler tokens up to 128000, the special
    tokens at Llama's ids and reserved specials after them, `vocab_size` entries in all. Fillers are byte-level
    strings no merge produces: encoding is unchanged, and any id the model emits decodes to something."""
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    first_special = min(LLAMA_SPECIAL_IDS.values())
    raw = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = {t: i for t, i in raw["model"]["vocab"].items() if t not in SPECIAL_TOKENS}
    vocab = {t: n for n, (t, _) in enumerate(sorted(vocab.items(), key=lambda kv: kv[1]))}
    letters = "abcdefghijklmnopqrstuvwxyz"
    k = 0
    while len(vocab) < first_special:
        word, n = "", k
        while True:
            word, n = letters[n % 26] + word, n // 26 - 1
            if n < 0:
                break
        k += 1
        if "\u0120~" + word not in vocab:
            vocab["\u0120~" + word] = len(vocab)
    specials = dict(LLAMA_SPECIAL_IDS)
    taken = set(specials.values())
    reserved = (i for i in range(first_special, vocab_size) if i not in taken)
    for n, i in enumerate(reserved):
        specials[f"<|reserved_special_token_{n}|>"] = i
    vocab.update(specials)
    raw["model"]["vocab"] = vocab
    raw["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for t, i in sorted(specials.items(), key=lambda kv: kv[1])]
    for entry in raw["post_processor"]["special_tokens"].values():
        entry["ids"] = [specials[entry["id"]]]
    filled = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(raw)), bos_token=BOS, eos_token=EOT, pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOT, PAD)],
        model_max_length=tokenizer.model_max_length,
    )
    filled.chat_template = tokenizer.chat_template
    return filled


def stand_in_config(spec: TinySpec, ids: dict[str, int], vocab_size: int):
    """The LlamaConfig of a stand-in: the spec's sizes, the tokenizer's special ids, its stop tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS_TEXT], ids[EOM], ids[EOT]],
        pad_token_id=ids[PAD],
        tie_word_embeddings=spec.tie_word_embeddings,
        **({"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
           if spec.llama3_rope else {}),
    )


def build_tiny_model(out_dir: str | Path, spec: TinySpec = TinySpec(), corpus: Iterable[str] | None = None) -> Path:
    """Train the tokenizer, init the model, and save both (plus the spec) to `out_dir`."""
    import json

    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus if corpus is not None else default_corpus(), min(spec.vocab_size, 4096))
    if spec.llama_special_ids:
        tokenizer = fill_to_llama_ids(tokenizer, spec.vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = stand_in_config(spec, ids, len(tokenizer))
    torch.manual_seed(spec.seed)
    dtype = getattr(torch, spec.dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the saved dtype: the 3B stand-in in fp32 would need 13 GB
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS], eos_token_id=config.eos_token_id, pad_token_id=ids[PAD], do_sample=False
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return out


def make_random_adapter(base: str | Path, out_dir: str | Path, r: int = 4, seed: int = 1) -> Path:
    """A LoRA adapter with random (non-zero) B matrices: it visibly changes the model, so tests and
    smoke runs can tell whether an adapter was applied. PEFT's default init (B = 0) would not."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(out_dir)
    return Path(out_dir)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the tiny model and tokenizer")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny",
                        help="tiny (seconds, tests) or llama-3.2-3b (Llama 3.2 3B's architecture and vocabulary, "
                             "random bf16 weights, 6.4 GB: for speed and memory benchmarks)")
    parser.add_argument("--layers", type=int, help="override the number of layers (a quicker partial stand-in)")
    parser.add_argument("--random-adapter", metavar="DIR", help="also save a random LoRA adapter for it here")
    parser.add_argument("--seed", type=int, default=TinySpec.seed)
    args = parser.parse_args(argv)
    from dataclasses import replace

    spec = replace(SHAPES[args.shape], seed=args.seed)
    if args.layers:
        spec = replace(spec, num_hidden_layers=args.layers)
    path = build_tiny_model(args.out, spec)
    print(f"{args.shape} Llama stand-in (random weights, not a model to evaluate) saved to {path}")
    if args.random_adapter:
        print(f"random LoRA adapter saved to {make_random_adapter(path, args.random_adapter, seed=args.seed + 1)}")


if __name__ == "__main__":
    main()
