"""Grammar-constrained greedy decoding for the local backend: one llguidance matcher per row of the batch.

Each step, every row's matcher gives the tokens its grammar allows next; the others' logits become -inf before
the argmax, so greedy decoding stays deterministic (the same replies on every run). An end-of-turn token is
allowed exactly when the grammar accepts what the row has written. The grammar comes with the request
(Request.grammar, built by the task); a request without one is refused, never decoded freely by accident.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from harness.backends.base import BackendError, Request


class Constraint:
    """The tokenizer's llguidance view (built once: ~1 s) and a compiled check per distinct grammar."""

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int]) -> None:
        try:
            import llguidance
            import llguidance.hf
        except ImportError:
            raise BackendError("constrained decoding needs llguidance: pip install 'toolcall-harness[local]'") from None
        self._llg = llguidance
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, eos_token=list(stop_ids))
        self.vocab = self.tokenizer.vocab_size
        self._compiled: dict[str, Any] = {}  # grammar text -> a matcher at its start, copied for each row
        self.mask_s = 0.0  # time spent computing and applying masks (benchmarks/constrained_decoding.py)

    def matcher(self, request: Request) -> Any:
        """A fresh matcher for the request's grammar (BackendError when it has none or it does not compile): each
        grammar is compiled once, and every row gets a copy of its start state."""
        grammar = request.grammar
        if grammar is None:
            raise BackendError(f"{request.key}: no grammar came with this request, so it cannot be decoded constrained")
        start = self._compiled.get(grammar.text)
        if start is None:
            start = self._llg.LLMatcher(self.tokenizer, grammar.text, log_level=0)
            if start.is_error():
                raise BackendError(f"{request.key}: the reply grammar does not compile: {start.get_error().splitlines()[0]}")
            self._compiled[grammar.text] = start
        return start.deep_copy()

    def mask(self, matchers: Sequence[Any], logits: torch.Tensor) -> None:
        """Set every token a row's grammar does not allow next to -inf, in place (row i <-> matchers[i])."""
        import time

        started = time.perf_counter()
        allowed = np.stack([np.unpackbits(np.frombuffer(m.compute_bitmask(), dtype=np.uint8), bitorder="little")
                            for m in matchers])
        width = logits.shape[1]
        keep = torch.zeros((len(matchers), width), dtype=torch.bool)
        n = min(width, allowed.shape[1], self.vocab)
        keep[:, :n] = torch.from_numpy(allowed[:, :n].astype(bool))
        if not bool(keep.any(dim=1).all()):
            dead = [i for i in range(len(matchers)) if not bool(keep[i].any())]
            raise BackendError(f"the grammar allows no next token for row(s) {dead}: "
                               f"{matchers[dead[0]].get_error() or 'a dead end'}")
        logits.masked_fill_(~keep.to(logits.device), float("-inf"))
        self.mask_s += time.perf_counter() - started

    def take(self, matchers: Sequence[Any], tokens: Sequence[int]) -> None:
        """Advance each row's matcher by the token chosen for it."""
        for m, token in zip(matchers, tokens):
            if not m.consume_token(token):
                raise BackendError(f"token {token} was chosen against the grammar: {m.get_error()}")


def library() -> dict[str, Any]:
    """What the fingerprint records about the constraint library."""
    from harness.grammar import LIBRARY, library_version

    return {"library": LIBRARY, "version": library_version()}
