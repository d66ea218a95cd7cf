"""The offline stand-ins: the tiny model of the tests, and the full-size Llama 3.2 3B shape for benchmarks."""
import json
from dataclasses import replace

import pytest

pytest.importorskip("torch")

from harness.tiny import LLAMA_SPECIAL_IDS, SHAPES, SPECIAL_TOKENS, stand_in_config  # noqa: E402


def test_the_3b_shape_is_llama_3_2_3b():
    import torch
    from transformers import LlamaForCausalLM

    spec = SHAPES["llama-3.2-3b"]
    config = stand_in_config(spec, LLAMA_SPECIAL_IDS, spec.vocab_size)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 3_212_749_824  # Llama 3.2 3B's count (tied embeddings)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
            config.head_dim, config.vocab_size) == (28, 3072, 24, 8, 128, 128256)
    assert config.rope_parameters["rope_type"] == "llama3" and config.eos_token_id == [128001, 128008, 128009]


def test_a_narrow_build_of_the_3b_layout_loads_and_generates(tmp_path):
    """The full vocabulary and Llama's special ids, with small layers (the 3B build itself takes minutes and 6 GB):
    the tokenizer encodes as before, every id decodes, and the local backend runs it end to end."""
    from transformers import AutoTokenizer

    from harness.backends import Request
    from harness.backends.local import GenerationSettings, LocalBackend
    from harness.isotime import parse_now
    from harness.tiny import build_tiny_model
    spec = replace(SHAPES["llama-3.2-3b"], hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                   num_attention_heads=4, num_key_value_heads=2, dtype="float32")
    path = build_tiny_model(tmp_path / "m", spec)
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == 128256 and {t: tok.convert_tokens_to_ids(t) for t in LLAMA_SPECIAL_IDS} == LLAMA_SPECIAL_IDS
    assert tok.convert_ids_to_tokens(128255) == "<|reserved_special_token_248|>"
    text = "Remind me to buy milk tomorrow."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert max(ids) < 4096 and tok.decode(ids) == text  # learned tokens encode as in the tiny tokenizer
    assert isinstance(tok.decode([50000, 120000]), str) and tok.decode([50000]).strip()
    config = json.loads((path / "config.json").read_text())
    assert config["vocab_size"] == 128256 and config["tie_word_embeddings"] is True
    assert set(SPECIAL_TOKENS) <= set(tok.get_vocab())
    backend = LocalBackend(str(path), device="cpu", settings=GenerationSettings(max_new_tokens=4, batch_size=1))
    [reply] = backend.generate([Request("r", ({"role": "user", "content": text},), parse_now("2026-02-24T09:00:00Z"))])
    assert reply.error is None and reply.usage["completion_tokens"] >= 1
