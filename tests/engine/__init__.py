"""Shared helpers of the packed-format and engine tests: tiny non-trivial quantized students."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import paddle
from paddlenlp.transformers import BertConfig

from paddle_binbert import quantize_model
from paddle_binbert.engine.ops import ISA_CODES

PRESETS = ("bibert", "bit", "bwn")
#: instruction sets of the kernels, name -> code
ISAS = dict(ISA_CODES)


def require_isa(name: str) -> int:
    """The code of instruction set ``name``; skips the test when this CPU lacks it."""
    import pytest

    from paddle_binbert import engine

    code = ISAS[name]
    if code > engine.cpu_info()["best_isa"]:
        pytest.skip(f"this CPU has no {name}")
    return code


def tiny_config(
    hidden: int = 48, heads: int = 4, inter: int = 80, layers: int = 2, vocab: int = 99, max_pos: int = 160
) -> BertConfig:
    """A small BERT; hidden 48 / 4 heads gives head size 12 (neither a multiple of 8 nor of 64)."""
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=max_pos,
        num_labels=3,
    )


def random_batch(batch: int = 3, seq_len: int = 12, vocab: int = 99, seed: int = 0) -> Tuple[paddle.Tensor, ...]:
    """(input_ids, token_type_ids) with padding (id 0) at the end of some rows."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (batch, seq_len))
    types = np.zeros_like(ids)
    if batch > 1 and seq_len > 1:
        ids[1, max(1, seq_len // 2) :] = 0
        types[0, seq_len // 3 :] = 1
    if batch > 2 and seq_len > 2:
        ids[2, 2:] = 0
    return paddle.to_tensor(ids, dtype="int64"), paddle.to_tensor(types, dtype="int64")


def make_student(preset: str, cls, seed: int = 0, config: Optional[BertConfig] = None, perturb: bool = True):
    """A quantized student in eval mode that is not trivially symmetric.

    One forward pass in train mode initialises BiT's elastic alphas from data; then biases,
    elastic betas and LayerNorm parameters are randomised, as training would leave them (zero
    biases make many binary-linear outputs exactly 0, ties that test_exact_match.py checks on their own).
    """
    paddle.seed(seed)
    model = cls(config or tiny_config())
    quantize_model(model, preset)
    ids, types = random_batch(seed=seed + 1, vocab=model.config.vocab_size)
    model.train()
    with paddle.no_grad():
        model(ids, token_type_ids=types)
    if perturb:
        paddle.seed(seed + 2)
        for name, param in model.named_parameters():
            if name.endswith(".bias") or name.endswith(".beta"):
                param.set_value(paddle.randn(param.shape) * 0.1)
            elif ("norm" in name) and name.endswith(".weight"):
                param.set_value(1.0 + paddle.randn(param.shape) * 0.1)
    model.eval()
    return model


def simulated_output(model, ids, types=None, attention_mask=None) -> np.ndarray:
    """The simulated (fake-quant) student's eval-mode output as numpy; QA's (start, end) stacked."""
    with paddle.no_grad():
        out = model(ids, token_type_ids=types, attention_mask=attention_mask)
    if isinstance(out, (tuple, list)):
        return np.stack([o.numpy() for o in out])
    return out.numpy()


def engine_output(engine, ids, types=None, attention_mask=None) -> np.ndarray:
    """The engine's output as numpy; QA's (start, end) stacked."""
    out = engine(ids, types, attention_mask)
    return np.stack(out) if isinstance(out, tuple) else out


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|."""
    return float(np.abs(np.asarray(got) - np.asarray(ref)).max() / max(np.abs(ref).max(), 1e-30))


def train_on_random_labels(model, steps: int, seed: int, learning_rate: float) -> None:
    """``steps`` SGD steps of cross-entropy on random labels (random ids and token types of batch 8,
    length 16), so that a student's weights leave their initialisation."""
    import paddle.nn.functional as F

    rng = np.random.default_rng(seed)
    opt = paddle.optimizer.SGD(learning_rate=learning_rate, parameters=model.parameters())
    model.train()
    for step in range(steps):
        ids, types = random_batch(8, 16, vocab=model.config.vocab_size, seed=seed + step)
        labels = paddle.to_tensor(rng.integers(0, model.config.num_labels, 8), dtype="int64")
        F.cross_entropy(model(ids, token_type_ids=types), labels).backward()
        opt.step()
        opt.clear_grad()
