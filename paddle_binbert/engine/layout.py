"""The packed model as the C++ forward pass takes it: weight list, integer / float configuration.

Paddle-free (numpy only): shared by the Paddle engine (:class:`~paddle_binbert.engine.PackedBertEngine`,
the ``binbert_bert_forward`` operator) and by :mod:`paddle_binbert.runtime` (the same C++ forward
pass in a plain shared library), which both call ``binbert::bert_forward`` of
``engine/csrc/binbert_forward.cc``. The tensor layout and the ``icfg`` entries are documented in
``engine/csrc/binbert_forward.h``; the constants here must stay in sync with it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "ACT_CODES",
    "ATTENTION_CODES",
    "ATTN_OFF",
    "EMB_TENSORS",
    "GELU_SIGN_THRESHOLD",
    "LAYER_TENSORS",
    "NORM_OFF",
    "PANEL",
    "build_config",
    "build_weight_list",
    "check_length_config",
    "parse_length_config",
    "weight_panels",
]

PANEL = 48  # weight rows per panel (binbert_kernels.cc kPanel)
# tensor layout of binbert::bert_forward (binbert_forward.h)
EMB_TENSORS, LAYER_TENSORS, ATTN_OFF, NORM_OFF = 6, 42, 30, 38
ATTENTION_CODES = {"bool": 0, "softmax_elastic": 1, "ones": 2}
QKV_MODES = {"bool": 0, "ones": 1, "softmax_elastic": 2}
ACT_CODES = {"relu": 1, "gelu": 2}
#: number of integer configuration entries before the optional per-layer token budgets (enum Cfg)
NUM_CFG = 15

#: The largest float32 ``x`` for which Paddle's CPU GELU returns -0.0 (so ``sgn(GELU(x)) = +1`` for
#: ``x <= t``, and -1 for ``t < x < 0``): ``-5.5546555519104`` (float32 bits ``0xC0B1BFBD``), as
#: probed from Paddle 3.3.1 by :func:`paddle_binbert.engine.gelu_sign_threshold`. The Paddle engine
#: probes it at load; :mod:`paddle_binbert.runtime` (no Paddle) uses this constant, and
#: ``tests/runtime`` checks that the two agree.
GELU_SIGN_THRESHOLD = float(np.array([0xC0B1BFBD], dtype=np.uint32).view(np.float32)[0])


def weight_panels(bits: np.ndarray) -> np.ndarray:
    """File layout ``[N, KW]`` uint64 -> kernel layout ``[ceil(N/48), KW, 48]`` (int64 view).

    Panel ``p`` holds rows ``48p .. 48p+47`` (zero rows past ``N``), word-major, so that one step
    of the GEMM loads 48 rows' word ``k`` as 6 contiguous zmm registers.
    """
    bits = np.asarray(bits, dtype=np.uint64)
    n, kw = bits.shape
    panels = (n + PANEL - 1) // PANEL
    out = np.zeros((panels * PANEL, kw), dtype=np.uint64)
    out[:n] = bits
    return np.ascontiguousarray(out.reshape(panels, PANEL, kw).transpose(0, 2, 1)).view(np.int64)


def check_length_config(length_config: Optional[Sequence[int]], num_layers: int) -> Optional[Tuple[int, ...]]:
    """Validate a length configuration: ``num_layers`` positive ints, non-increasing (``l_i >= l_{i+1}``).

    Returns it as a tuple (None stays None: every layer keeps every token). Also exported as
    :func:`paddle_binbert.length_adaptive.check_length_config`.
    """
    if length_config is None:
        return None
    config = tuple(int(v) for v in length_config)
    if len(config) != num_layers:
        raise ValueError(f"length configuration {config} has {len(config)} entries; the model has {num_layers} layers")
    if any(v < 1 for v in config):
        raise ValueError(f"length configuration {config}: every budget must be at least 1 ([CLS])")
    if any(a < b for a, b in zip(config, config[1:])):
        raise ValueError(f"length configuration {config} must be non-increasing")
    return config


def parse_length_config(text: str) -> Tuple[int, ...]:
    """Parse ``"64,60,48"`` (or ``64-60-48``) into a tuple of ints (not yet checked against a model:
    :func:`check_length_config`). Also exported as :func:`paddle_binbert.length_adaptive.search.parse_length_config`."""
    parts = [p for p in text.replace("-", ",").replace(" ", ",").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError as err:
        raise ValueError(f"length configuration {text!r} is not a comma-separated list of integers") from err


def build_config(
    meta: Mapping[str, Any], isa: int, num_threads: int, profile: bool, gelu_threshold: float
) -> Tuple[List[int], List[float]]:
    """``(icfg, fcfg)`` of the forward pass for the ``binbert_packed`` metadata ``meta``.

    ``gelu_threshold`` is used only for GELU models (see :data:`GELU_SIGN_THRESHOLD`); a length
    configuration is appended to ``icfg`` per call.
    """
    m = meta
    icfg = [
        int(m["num_layers"]),
        int(m["hidden_size"]),
        int(m["num_heads"]),
        int(m["intermediate_size"]),
        0 if m["task"] == "classification" else 1,
        int(m["num_labels"]),
        ATTENTION_CODES[m["attention"]],
        QKV_MODES[m["attention"]],
        ACT_CODES[m["hidden_act"]],
        1 if m["ffn2_input"] == "unsigned" else 0,
        1 if m["activation"] == "elastic" else 0,
        int(isa),
        int(num_threads),
        1,
        1 if profile else 0,
    ]
    assert len(icfg) == NUM_CFG
    eps = m["layer_norm_eps"]
    thr = float(gelu_threshold) if m["hidden_act"] == "gelu" else float("-inf")
    return icfg, [float(eps["embeddings"]), float(eps["encoder"]), thr]


def build_weight_list(meta: Mapping[str, Any], tensors: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """The tensor list of the forward pass (layout documented in ``binbert_forward.h``), from the
    tensors of a packed folder: weight bits as panels (int64 views), float16 FP islands as float32,
    every array C-contiguous."""
    m, t = meta, tensors
    h, heads = int(m["hidden_size"]), int(m["num_heads"])
    elastic = m["activation"] == "elastic"
    one = np.ones([1], dtype=np.float32)
    dummy = np.zeros([1], dtype=np.float32)
    dummy_bits = np.zeros([1], dtype=np.int64)

    def linear(name: str) -> List[np.ndarray]:
        return [
            weight_panels(t[f"{name}.bits"]),
            t[f"{name}.alpha"],
            t[f"{name}.bias"],
            t[f"{name}.input_beta"] if elastic else dummy,
            t[f"{name}.input_alpha"] if elastic else one,
        ]

    def fused(names: Sequence[str]) -> List[np.ndarray]:
        return [
            weight_panels(np.concatenate([t[f"{n}.bits"] for n in names], axis=0)),
            np.concatenate([t[f"{n}.alpha"] for n in names]),
            np.concatenate([t[f"{n}.bias"] for n in names]),
            dummy,
            one,
        ]

    unused = [dummy_bits, dummy, dummy, dummy, one]
    emb = "bert.embeddings"
    out: List[np.ndarray] = [
        t[f"{emb}.word_embeddings.bits"].view(np.int64),
        t[f"{emb}.word_embeddings.alpha"],
        t[f"{emb}.position_embeddings.weight"],
        t[f"{emb}.token_type_embeddings.weight"],
        t[f"{emb}.layer_norm.weight"],
        t[f"{emb}.layer_norm.bias"],
    ]
    scale = np.float32(float(h // heads) ** -0.5)
    for i in range(int(m["num_layers"])):
        pre = f"bert.encoder.layers.{i}"
        qkv = [f"{pre}.self_attn.{p}_proj" for p in ("q", "k", "v")]
        if m["attention"] == "bool":
            block = fused(qkv) + unused + unused
        elif m["attention"] == "ones":
            block = unused + unused + linear(qkv[2])
        else:
            block = linear(qkv[0]) + linear(qkv[1]) + linear(qkv[2])
        block += linear(f"{pre}.self_attn.out_proj") + linear(f"{pre}.linear1") + linear(f"{pre}.linear2")
        if m["attention"] == "softmax_elastic":
            q = {n: t[f"{pre}.self_attn.{n}_quantizer.alpha"][0] for n in ("query", "key", "value", "prob")}
            cqk = np.float32(np.float32(q["query"] * scale) * q["key"])  # fl(fl(aq / sqrt d) * ak)
            cpv = np.float32(q["prob"] * q["value"])  # fl(ap * av)
            attn = [
                np.array([cqk], np.float32),
                np.array([cpv], np.float32),
                t[f"{pre}.self_attn.prob_quantizer.alpha"],
                t[f"{pre}.self_attn.prob_quantizer.beta"],
                t[f"{pre}.self_attn.query_quantizer.beta"],
                t[f"{pre}.self_attn.key_quantizer.beta"],
                t[f"{pre}.self_attn.value_quantizer.beta"],
                dummy,
            ]
        else:
            attn = [np.array([scale], np.float32), one, one, dummy, dummy, dummy, dummy, dummy]
        block += attn
        block += [t[f"{pre}.{n}.{p}"] for n in ("norm1", "norm2") for p in ("weight", "bias")]
        assert len(block) == LAYER_TENSORS
        out += block
    out += linear("bert.pooler.dense") if m["task"] == "classification" else unused
    out += [t["classifier.weight"], t["classifier.bias"]]
    # float16 FP islands (pack_model(fp_dtype="float16")) run in float32
    return [np.ascontiguousarray(a.astype(np.float32) if a.dtype == np.float16 else a) for a in out]
