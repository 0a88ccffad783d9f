"""Model-size and FLOPs accounting for (binarized) BERT, following the papers' conventions.

The numbers reproduce the "size" and "FLOPs" columns of BinaryBERT (Bai et al., ACL 2021),
BiBERT (Qin et al., ICLR 2022) and BiT (Liu et al., NeurIPS 2022); see
``/work/shared/specs/accounting_and_engine.md``.  Bits are written W-E-A (weights of the
Transformer linears, word embedding, activations); 32 means full precision (FP32).

Size convention
---------------
``size = sum_tensors numel * bits / 8`` bytes, reported in MiB (2^20 bytes).

* At W bits: the encoder linears (query, key, value, attention output, FFN1, FFN2 of every layer)
  and the pooler dense layer.  At E bits: the word embedding.  Every quantized matrix also stores
  an FP32 scale vector: ``alpha[out]`` per output channel of a linear, ``alpha[vocab]`` per row of
  the word embedding (the packed format of the spec).  Activation scales are scalars and ignored.
* At 32 bits: position and token-type embeddings, every LayerNorm (gamma and beta), every bias and
  the task head (classifier, ``num_labels`` outputs; read from the config, default 2).
* The classifier IS included.  FP BERT-base (vocab 30522, type_vocab_size 2) gives 417.646 MiB
  with a 2-label head (417.642 without a head): both round to the required 417.6 (papers: "418").
  A 3-label head (MNLI) gives 417.650, which already rounds to 417.7; the reference figure is
  therefore the binary-task / no-head model, and differences between heads are < 0.01 MiB.
  Note PaddleNLP's ``BertConfig()`` default has ``type_vocab_size=16`` (417.68); the built-in
  ``bert-base`` uses 2 like ``bert-base-uncased``.
* 1-1-1 BERT-base lands at **15.40 MiB** (binary matrices 12.99 + FP32 scales 0.44 + FP32
  position/type embeddings 1.51 + LayerNorms/biases/head 0.47), against 13.4 in BiBERT / BiT and
  16.5 in BinaryBERT.  The papers do not publish their convention; one reconstruction that gives
  13.4 is "position and token-type embeddings at E bits too, no scale vectors, no pooler"
  (13.44 MiB, see :func:`size_mib` with ``fp_positions=False, count_scales=False``, minus the
  0.07 MiB pooler).  The default keeps the convention above because position embeddings
  and LayerNorm stay FP32 in every method (spec README, "FP islands").

FLOPs convention
----------------
* Matrix products: an m-bit x n-bit product costs ``2 * MACs * m * n / 64`` (BinaryBERT, 64-bit
  instruction width); a product with an FP32 operand costs at most the FP32 price ``2 * MACs``
  (the factor ``m * n / 64`` is capped at 1).  Encoder linears and the pooler run at W x A bits;
  the two attention products ``Q K^T`` and ``P V`` run at A x A bits (both operands are quantized
  activations).  The embedding look-up costs nothing; the classifier is FP32.
* FP islands, always FP32, with ELECTRA's per-element constants (Clark et al., ICLR 2020,
  ``flops_computation.py``) and no dropout (inference): softmax 5 (max/subtract, exp, sum,
  divide), LayerNorm 5 (mean, variance, subtract, scale, shift), GELU / tanh 8, bias add 1,
  residual add 1, score scaling 1/sqrt(d) 1, embedding sum 2 adds per element.
* Numbers for BERT-base at sequence length 128: FP 22.43 G (linears 21.74 + attention products
  0.60 + islands 0.08; the papers: 22.5); W1A8 (1-1-8) 3.40 (3.1, +9.7 %); W1A4 1.59 (1.5, +5.8 %);
  W1A2 0.79 (0.8, -0.7 %); W1A1 0.43 (0.4, +6.7 %).  The matrix products alone give FP 22.35 and
  W1A8 3.32 (the 8-bit attention products cost 0.60 G, 8 x 8 / 64 = 1).  The FP islands are FP32 in
  every setting, so one island total c is added to both: ``round(FP, 1) == 22.5`` needs
  c >= 22.45 - 22.348 = 0.102 G, while W1A8 within 10 % of 3.1 needs c <= 3.41 - 3.322 = 0.088 G.
  No per-element convention satisfies both; the reported FP figure is therefore 22.43 (22.4, 0.3 %
  under the papers' 22.5) and the ELECTRA constants (c = 0.078 G) sit inside the admissible window
  [0.05, 0.088] G (FP >= 22.4 and W1A8 <= 3.41).  Heavier, still defensible constants (LayerNorm 8,
  softmax 5, GELU 8) move FP by +0.008 G only; reaching 22.5 would take e.g. GELU ~ 13 FLOPs/elem,
  which breaks the 1-1-8 row (3.42, +10.4 %).  ``test_fp_rounding_window`` pins this arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

BitsLike = Union[str, Sequence[int]]

FP_BITS = 32
INSTRUCTION_WIDTH = 64
SOFTMAX_FLOPS = 5
LAYER_NORM_FLOPS = 5
ACTIVATION_FLOPS = 8
MIB = float(2**20)

BUILTIN_CONFIGS: dict[str, dict[str, int]] = {
    "bert-base": {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "num_labels": 2,
    },
    "minilm-l6": {
        "vocab_size": 30522,
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "num_labels": 2,
    },
}

#: BertConfig fields that size the model (all positive integers)
ARCH_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclass(frozen=True)
class Arch:
    """The architecture numbers the accounting needs (a normalised BERT config)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    num_labels: int = 2


@dataclass(frozen=True)
class SizeRow:
    """One component of the size breakdown: ``numel`` values stored at ``bits`` bits."""

    name: str
    numel: int
    bits: int

    @property
    def mib(self) -> float:
        """Storage in MiB: ``numel * bits / 8 / 2^20``."""
        return self.numel * self.bits / 8.0 / MIB


@dataclass(frozen=True)
class FlopsRow:
    """One component of the FLOPs breakdown.

    ``kind`` is ``"matmul"`` (``count`` = MACs, operands at ``bits_a`` x ``bits_b``) or
    ``"elementwise"`` (``count`` = elements, ``per_element`` FP32 operations each).
    """

    name: str
    kind: str
    count: int
    bits_a: int = FP_BITS
    bits_b: int = FP_BITS
    per_element: int = 1

    @property
    def flops(self) -> float:
        """FLOPs of the row: :func:`matmul_flops` or ``count * per_element``."""
        if self.kind == "matmul":
            return matmul_flops(self.count, self.bits_a, self.bits_b)
        return float(self.count * self.per_element)


def parse_bits(bits: BitsLike) -> tuple[int, int, int]:
    """Parse a W-E-A bit setting (``"1-1-1"`` or ``(1, 1, 1)``) into a ``(W, E, A)`` tuple.

    Each entry must be in 1..32; 32 (or more) means full precision.
    """
    if isinstance(bits, str):
        parts = [p for p in bits.replace(",", "-").split("-") if p.strip()]
        values = [int(p) for p in parts]
    else:
        values = [int(b) for b in bits]
    if len(values) != 3:
        raise ValueError(f"bits must be W-E-A (three numbers), got {bits!r}")
    if any(v < 1 for v in values):
        raise ValueError(f"bit widths must be >= 1, got {bits!r}")
    w, e, a = (min(v, FP_BITS) for v in values)
    return w, e, a


def _get(config: Any, key: str) -> Any:
    if isinstance(config, Mapping):
        return config[key]
    return getattr(config, key)


def to_arch(config: Any, num_labels: Optional[int] = None) -> Arch:
    """Normalise a PaddleNLP ``BertConfig``, a dict, a built-in name or an :class:`Arch`.

    ``num_labels`` overrides the config's value (default 2 when the config has none).
    """
    if isinstance(config, Arch):
        arch = config
        return arch if num_labels is None else Arch(**{**arch.__dict__, "num_labels": int(num_labels)})
    if isinstance(config, str):
        config = load_config(config)
    values = {k: int(_get(config, k)) for k in ARCH_KEYS}
    if num_labels is None:
        try:
            num_labels = _get(config, "num_labels")
        except (KeyError, AttributeError):
            num_labels = None
    values["num_labels"] = 2 if num_labels is None else int(num_labels)
    if values["hidden_size"] % values["num_attention_heads"]:
        raise ValueError("hidden_size must be divisible by num_attention_heads")
    return Arch(**values)


def load_config(name_or_path: str) -> dict[str, Any]:
    """Return a built-in config (``bert-base``, ``minilm-l6``) or read a JSON config file / directory.

    A JSON file may hold the architecture keys at the top level or in one nested object.
    """
    key = name_or_path.lower()
    if key in BUILTIN_CONFIGS:
        return dict(BUILTIN_CONFIGS[key])
    path = name_or_path
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"unknown config {name_or_path!r}: not one of {sorted(BUILTIN_CONFIGS)} nor a JSON file")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return _find_arch_dict(data, name_or_path)


def _find_arch_dict(data: Any, origin: str) -> dict[str, Any]:
    if isinstance(data, dict):
        if all(k in data for k in ARCH_KEYS):
            return data
        for value in data.values():
            try:
                return _find_arch_dict(value, origin)
            except ValueError:
                continue
    raise ValueError(f"{origin}: no object with keys {ARCH_KEYS}")


def matmul_flops(macs: int, bits_a: int, bits_b: int) -> float:
    """Cost of a matrix product with ``macs`` multiply-accumulates (BinaryBERT, Bai et al. 2021).

    ``FLOPs = 2 * MACs * min(m * n / 64, 1)`` for an m-bit x n-bit product; FP32 x FP32 (and any
    product the formula would price above FP32) costs ``2 * MACs``.
    """
    if bits_a >= FP_BITS and bits_b >= FP_BITS:
        return 2.0 * macs
    factor = min(bits_a * bits_b / INSTRUCTION_WIDTH, 1.0)
    return 2.0 * macs * factor


def size_breakdown(
    config: Any,
    bits: BitsLike,
    num_labels: Optional[int] = None,
    fp_positions: bool = True,
    count_scales: bool = True,
) -> list[SizeRow]:
    """Per-component storage rows; ``size = sum numel * bits / 8`` bytes (spec convention).

    ``fp_positions=False`` stores position / token-type embeddings at E bits (with per-row scales)
    and ``count_scales=False`` drops the FP32 scale vectors: both only exist to reconstruct the
    papers' 13.4 MiB, the default is the project convention (module docstring).
    """
    arch = to_arch(config, num_labels)
    w, e, _ = parse_bits(bits)
    h, i, n = arch.hidden_size, arch.intermediate_size, arch.num_hidden_layers
    rows: list[SizeRow] = []

    def add_matrix(name: str, numel: int, nbits: int, scales: int) -> None:
        rows.append(SizeRow(name, numel, nbits))
        if nbits < FP_BITS and count_scales:
            rows.append(SizeRow(name + ".scale", scales, FP_BITS))

    add_matrix("embeddings.word", arch.vocab_size * h, e, arch.vocab_size)
    pos_bits = FP_BITS if fp_positions else e
    add_matrix("embeddings.position", arch.max_position_embeddings * h, pos_bits, arch.max_position_embeddings)
    add_matrix("embeddings.token_type", arch.type_vocab_size * h, pos_bits, arch.type_vocab_size)
    rows.append(SizeRow("embeddings.layer_norm", 2 * h, FP_BITS))
    for name, fan_in, fan_out in (
        ("query", h, h),
        ("key", h, h),
        ("value", h, h),
        ("attn_out", h, h),
        ("ffn1", h, i),
        ("ffn2", i, h),
    ):
        add_matrix(f"encoder.{name}", n * fan_in * fan_out, w, n * fan_out)
    rows.append(SizeRow("encoder.biases", n * (4 * h + i + h), FP_BITS))
    rows.append(SizeRow("encoder.layer_norms", n * 2 * 2 * h, FP_BITS))
    add_matrix("pooler.dense", h * h, w, h)
    rows.append(SizeRow("pooler.bias", h, FP_BITS))
    if arch.num_labels > 0:
        rows.append(SizeRow("classifier", h * arch.num_labels + arch.num_labels, FP_BITS))
    return rows


def size_mib(config: Any, bits: BitsLike, num_labels: Optional[int] = None, **kwargs: bool) -> float:
    """Model size in MiB: ``sum_tensors numel * bits / 8 / 2^20`` (BinaryBERT / BiBERT tables).

    Quantized matrices at W (encoder linears, pooler) or E (word embedding) bits plus their FP32
    scale vectors; everything else FP32.  FP BERT-base: 417.64; 1-1-1 BERT-base: 15.40.
    """
    return sum(r.mib for r in size_breakdown(config, bits, num_labels, **kwargs))


def flops_breakdown(
    config: Any, bits: BitsLike, seq_len: int = 128, num_labels: Optional[int] = None
) -> list[FlopsRow]:
    """Per-component FLOPs rows for one sequence of ``seq_len`` tokens (batch 1).

    Linears: ``2 * MACs * W * A / 64``; attention ``Q K^T`` and ``P V``: ``2 * MACs * A * A / 64``
    (BinaryBERT); FP islands with ELECTRA's constants (softmax 5, LayerNorm 5, GELU/tanh 8, bias,
    residual and score scaling 1 per element, embedding sum 2).
    """
    arch = to_arch(config, num_labels)
    w, _, a = parse_bits(bits)
    s, h, i, n = seq_len, arch.hidden_size, arch.intermediate_size, arch.num_hidden_layers
    heads = arch.num_attention_heads
    rows = [
        FlopsRow("embeddings.sum", "elementwise", s * h, per_element=2),
        FlopsRow("embeddings.layer_norm", "elementwise", s * h, per_element=LAYER_NORM_FLOPS),
        FlopsRow("encoder.qkv", "matmul", n * s * h * 3 * h, w, a),
        FlopsRow("encoder.attn_scores(QK^T)", "matmul", n * heads * s * s * (h // heads), a, a),
        FlopsRow("encoder.attn_scale", "elementwise", n * heads * s * s),
        FlopsRow("encoder.softmax", "elementwise", n * heads * s * s, per_element=SOFTMAX_FLOPS),
        FlopsRow("encoder.attn_context(PV)", "matmul", n * heads * s * s * (h // heads), a, a),
        FlopsRow("encoder.attn_out", "matmul", n * s * h * h, w, a),
        FlopsRow("encoder.ffn1", "matmul", n * s * h * i, w, a),
        FlopsRow("encoder.gelu", "elementwise", n * s * i, per_element=ACTIVATION_FLOPS),
        FlopsRow("encoder.ffn2", "matmul", n * s * i * h, w, a),
        FlopsRow("encoder.biases", "elementwise", n * s * (4 * h + i + h)),
        FlopsRow("encoder.residuals", "elementwise", n * s * 2 * h),
        FlopsRow("encoder.layer_norms", "elementwise", n * s * 2 * h, per_element=LAYER_NORM_FLOPS),
        FlopsRow("pooler.dense", "matmul", h * h, w, a),
        FlopsRow("pooler.bias+tanh", "elementwise", h, per_element=1 + ACTIVATION_FLOPS),
    ]
    if arch.num_labels > 0:
        rows.append(FlopsRow("classifier", "matmul", h * arch.num_labels))
        rows.append(FlopsRow("classifier.bias", "elementwise", arch.num_labels))
    return rows


def flops_g(config: Any, bits: BitsLike, seq_len: int = 128, num_labels: Optional[int] = None) -> float:
    """Inference GFLOPs of one sequence: ``sum_rows FLOPs / 1e9`` (BinaryBERT convention).

    m-bit x n-bit products cost ``2 * MACs * m * n / 64``; FP islands at ELECTRA's constants.
    BERT-base, seq 128: FP 22.43, 1-1-8 3.40, 1-1-4 1.59, 1-1-2 0.79, 1-1-1 0.43.
    """
    return sum(r.flops for r in flops_breakdown(config, bits, seq_len, num_labels)) / 1e9


def breakdown(
    config: Any, bits: BitsLike, seq_len: int = 128, num_labels: Optional[int] = None
) -> dict[str, list[Union[SizeRow, FlopsRow]]]:
    """Both breakdowns: ``{"size": size_breakdown(...), "flops": flops_breakdown(...)}``."""
    return {
        "size": list(size_breakdown(config, bits, num_labels)),
        "flops": list(flops_breakdown(config, bits, seq_len, num_labels)),
    }


def bits_str(bits: BitsLike) -> str:
    """Canonical ``W-E-A`` string of a bit setting (``"1-1-1"``, ``"32-32-32"``)."""
    return "-".join(str(b) for b in parse_bits(bits))


def format_summary(config: Any, bits: BitsLike, seq_len: int = 128, num_labels: Optional[int] = None) -> str:
    """One line for run summaries: size (MiB) and GFLOPs, with the compression vs FP32.

    Size ``sum numel * bits / 8 / 2^20``, FLOPs ``2 * MACs * m * n / 64`` (BinaryBERT conventions).
    """
    arch = to_arch(config, num_labels)
    size, flops = size_mib(arch, bits), flops_g(arch, bits, seq_len)
    size_fp, flops_fp = size_mib(arch, "32-32-32"), flops_g(arch, "32-32-32", seq_len)
    return (
        f"L{arch.num_hidden_layers}-H{arch.hidden_size} W-E-A {bits_str(bits)}: "
        f"size {size:.2f} MiB ({size_fp / size:.1f}x smaller than FP32 {size_fp:.1f}), "
        f"{flops:.2f} GFLOPs @ seq {seq_len} ({flops_fp / flops:.1f}x fewer than FP32 {flops_fp:.2f})"
    )


def _format_table(config: Any, bits: BitsLike, seq_len: int, num_labels: Optional[int]) -> str:
    lines = [f"{'size component':<28}{'numel':>14}{'bits':>6}{'MiB':>10}"]
    size_rows = size_breakdown(config, bits, num_labels)
    for r in size_rows:
        lines.append(f"{r.name:<28}{r.numel:>14,}{r.bits:>6}{r.mib:>10.3f}")
    lines.append(f"{'total':<28}{'':>14}{'':>6}{sum(r.mib for r in size_rows):>10.2f}")
    lines.append("")
    lines.append(f"{'FLOPs component':<28}{'MACs/elements':>14}{'bits':>8}{'GFLOPs':>10}")
    flops_rows = flops_breakdown(config, bits, seq_len, num_labels)
    for r in flops_rows:
        b = f"{r.bits_a}x{r.bits_b}" if r.kind == "matmul" else f"FPx{r.per_element}"
        lines.append(f"{r.name:<28}{r.count:>14,}{b:>8}{r.flops / 1e9:>10.4f}")
    lines.append(f"{'total':<28}{'':>14}{'':>8}{sum(r.flops for r in flops_rows) / 1e9:>10.3f}")
    lines.append("")
    lines.append(format_summary(config, bits, seq_len, num_labels))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI: ``python -m paddle_binbert.accounting --config bert-base --bits 1-1-1 --seq_len 128``."""
    parser = argparse.ArgumentParser(description="Size / FLOPs accounting for (binarized) BERT.")
    parser.add_argument("--config", default="bert-base", help="bert-base, minilm-l6, or a config JSON file/dir")
    parser.add_argument("--bits", default="1-1-1", help="W-E-A bits, e.g. 1-1-1, 1-1-4, 32-32-32")
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--num_labels", type=int, default=None, help="classifier outputs (default: config or 2)")
    args = parser.parse_args(argv)
    print(_format_table(load_config(args.config), args.bits, args.seq_len, args.num_labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
