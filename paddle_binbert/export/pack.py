"""The packed 1-bit model file: what a user ships to run a binarized BERT with the binary engine.

``pack_model(student, out_dir, tokenizer=None)`` writes, for a student quantized with the
``bibert``, ``bit`` or ``bwn`` preset (``BertForSequenceClassification`` or
``BertForQuestionAnswering``)::

    out_dir/
      model.safetensors   every tensor (no pickle: loading cannot run code), CRC32 per tensor
      config.json         BertConfig + architectures + binbert_quant_config + binbert_packed
      vocab.txt, ...      the tokenizer files (when a tokenizer is given)

Tensors (names follow the PaddleNLP model; ``L`` layers, hidden ``H``, FFN ``I``):

- per binary linear ``<name>`` (q/k/v/out projections, ``linear1``, ``linear2``, pooler dense):
  ``<name>.bits`` uint64 ``[out, ceil(in/64)]``: sign bits of the quantized weight ``Wq`` (``[in, out]``
  in Paddle) packed along the input dimension, value ``i`` in bit ``i % 64`` of word ``i // 64``
  (little-endian), 1 for ``+1``, padding bits 0;
  ``<name>.alpha`` float32 ``[out]``: ``alpha_j = |Wq[:, j]|`` times the activation scale of the
  input where the input quantizer has one (BiT elastic: ``alpha_x * alpha_w``), so that the
  linear is exactly ``y_j = alpha_j * dot(bits(x), bits(w_j)) + b_j``;
  ``<name>.bias`` float32 ``[out]``;
  BiT only: ``<name>.input_beta`` float32 ``[in]`` and ``<name>.input_alpha`` float32 ``[1]`` of
  the elastic input quantizer (the bits are ``sgn(x - beta)``, or ``1[(x - beta)/alpha >= 1/2]``
  for the unsigned FFN2 input).
- word embedding: ``bert.embeddings.word_embeddings.bits`` uint64 ``[vocab, ceil(H/64)]`` and
  ``.alpha`` float32 ``[vocab]`` (row ``v`` is ``alpha_v * (+-1)``).
- BiT attention quantizers: ``...self_attn.{query,key,value}_quantizer.{alpha [1], beta [H]}`` and
  ``...self_attn.prob_quantizer.{alpha [1], beta [1]}``.
- FP islands: position / token-type embeddings, every LayerNorm, the classifier / QA head; float32
  by default (the engine then reproduces the student exactly), float16 with ``fp_dtype="float16"``
  (smaller file; the engine then reproduces the student whose FP islands are rounded to float16).

The file is written to a temporary folder next to ``out_dir`` and swapped into place atomically;
an existing ``out_dir`` is only replaced when it is a previous packed model (or with
``overwrite=True`` / ``--overwrite``), and never when it is, contains or would delete the student
folder (see :mod:`paddle_binbert.export.outdir`).
``load_packed(out_dir)`` validates everything: the config, the safetensors header against the
file size (a truncated file names the first incomplete tensor), the set of tensor names, every
shape and dtype against what the config implies (naming the offending tensor), the per-tensor
CRC32 (a corrupted byte names its tensor) and the zero padding bits.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import staged_output
from .outdir import OutputFolderError, check_output_dir, has_subfolders

__all__ = [
    "CONFIG_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PACKED_KEY",
    "WEIGHTS_NAME",
    "PackedFormatError",
    "OutputFolderError",
    "PackedModel",
    "check_pack_output",
    "expected_tensor_specs",
    "is_packed_dir",
    "load_packed",
    "is_fp_island",
    "pack_bits",
    "pack_model",
    "packed_size_report",
    "round_fp_islands",
    "unpack_bits",
]

FORMAT_NAME = "binbert-packed"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PACKED_KEY = "binbert_packed"
CRC_KEY = "binbert_crc32"
BIT_ORDER = (
    "uint64 words, little-endian; value i of a row in bit i % 64 of word i // 64; bit 1 = +1 "
    "(level 1 for unsigned activations); padding bits are 0"
)
ARCHITECTURES = {
    "BertForSequenceClassification": "classification",
    "BertForQuestionAnswering": "question_answering",
}
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "linear1", "linear2")
ATTN_QUANTIZERS = ("query_quantizer", "key_quantizer", "value_quantizer")
FP_DTYPES = ("float32", "float16")


def is_fp_island(name: str) -> bool:
    """Tensors stored in the packed file's ``fp_dtype``: position / token-type embeddings, LayerNorms
    and the head. (Scales, biases and betas of binary linears and quantizers always stay float32.)"""
    return (
        name.endswith(("position_embeddings.weight", "token_type_embeddings.weight"))
        or ".layer_norm." in name
        or ".norm1." in name
        or ".norm2." in name
        or name.startswith("classifier.")
    )


PathLike = Union[str, os.PathLike]


class PackedFormatError(ValueError):
    """A packed model folder is missing, corrupted, truncated or inconsistent (the message names
    the file and, where it applies, the tensor)."""


# ---------------------------------------------------------------------------------------------
# bit packing
# ---------------------------------------------------------------------------------------------
def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean matrix ``[rows, K]`` into uint64 words ``[rows, ceil(K/64)]``.

    Value ``i`` of a row goes to bit ``i % 64`` of word ``i // 64`` (little-endian words);
    the padding bits of the last word are 0.
    """
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2:
        raise ValueError(f"pack_bits expects a 2-D boolean array, got shape {bits.shape}")
    rows, k = bits.shape
    words = (k + 63) // 64
    padded = np.zeros((rows, words * 64), dtype=np.uint8)
    padded[:, :k] = bits
    return np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64).reshape(rows, words)


def unpack_bits(words: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint64 ``[rows, ceil(k/64)]`` -> boolean ``[rows, k]``."""
    words = np.ascontiguousarray(np.asarray(words, dtype=np.uint64)).astype("<u8")
    as_bytes = words.view(np.uint8).reshape(words.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :k].astype(bool)


def _padding_ok(words: np.ndarray, k: int) -> bool:
    rem = k % 64
    if rem == 0 or words.size == 0:
        return True
    mask = np.uint64((1 << 64) - (1 << rem))
    return not np.any(words[:, -1] & mask)


# ---------------------------------------------------------------------------------------------
# the packed model
# ---------------------------------------------------------------------------------------------
@dataclass
class PackedModel:
    """A validated packed folder: ``config`` (config.json), ``meta`` (its ``binbert_packed``
    entry), ``tensors`` (name -> numpy array) and the folder ``path``."""

    path: Path
    config: Dict[str, Any]
    meta: Dict[str, Any]
    tensors: Dict[str, np.ndarray]

    @property
    def task(self) -> str:
        """``classification`` or ``question_answering``."""
        return self.meta["task"]

    @property
    def quant_config(self):
        """The student's :class:`~paddle_binbert.quant.QuantConfig`."""
        from ..quant.config import QuantConfig

        return QuantConfig.from_dict(self.config["binbert_quant_config"], source=str(self.path / CONFIG_NAME))

    def size_bytes(self) -> int:
        """Size of ``model.safetensors`` on disk."""
        return (self.path / WEIGHTS_NAME).stat().st_size


def expected_tensor_specs(meta: Dict[str, Any]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """Every tensor name of a packed model with its expected ``(shape, numpy dtype name)``,
    derived from the ``binbert_packed`` metadata alone."""
    h, inter = int(meta["hidden_size"]), int(meta["intermediate_size"])
    layers, vocab = int(meta["num_layers"]), int(meta["vocab_size"])
    elastic = meta["activation"] == "elastic"
    fp_dtype = meta.get("fp_dtype", "float32")
    if fp_dtype not in FP_DTYPES:
        raise ValueError(f"fp_dtype {fp_dtype!r} is not one of {FP_DTYPES}")
    specs: Dict[str, Tuple[Tuple[int, ...], str]] = {}

    def words(k: int) -> int:
        return (k + 63) // 64

    def linear(name: str, n_in: int, n_out: int) -> None:
        specs[f"{name}.bits"] = ((n_out, words(n_in)), "uint64")
        specs[f"{name}.alpha"] = ((n_out,), "float32")
        specs[f"{name}.bias"] = ((n_out,), "float32")
        if elastic:
            specs[f"{name}.input_beta"] = ((n_in,), "float32")
            specs[f"{name}.input_alpha"] = ((1,), "float32")

    emb = "bert.embeddings"
    specs[f"{emb}.word_embeddings.bits"] = ((vocab, words(h)), "uint64")
    specs[f"{emb}.word_embeddings.alpha"] = ((vocab,), "float32")
    specs[f"{emb}.position_embeddings.weight"] = ((int(meta["max_position_embeddings"]), h), "float32")
    specs[f"{emb}.token_type_embeddings.weight"] = ((int(meta["type_vocab_size"]), h), "float32")
    specs[f"{emb}.layer_norm.weight"] = ((h,), "float32")
    specs[f"{emb}.layer_norm.bias"] = ((h,), "float32")
    for i in range(layers):
        pre = f"bert.encoder.layers.{i}"
        for lin in LINEARS:
            n_in = inter if lin == "linear2" else h
            n_out = inter if lin == "linear1" else h
            linear(f"{pre}.{lin}", n_in, n_out)
        if meta["attention"] == "softmax_elastic":
            for q in ATTN_QUANTIZERS:
                specs[f"{pre}.self_attn.{q}.alpha"] = ((1,), "float32")
                specs[f"{pre}.self_attn.{q}.beta"] = ((h,), "float32")
            specs[f"{pre}.self_attn.prob_quantizer.alpha"] = ((1,), "float32")
            specs[f"{pre}.self_attn.prob_quantizer.beta"] = ((1,), "float32")
        for norm in ("norm1", "norm2"):
            specs[f"{pre}.{norm}.weight"] = ((h,), "float32")
            specs[f"{pre}.{norm}.bias"] = ((h,), "float32")
    if meta["task"] == "classification":
        linear("bert.pooler.dense", h, h)
    specs["classifier.weight"] = ((h, int(meta["num_labels"])), "float32")
    specs["classifier.bias"] = ((int(meta["num_labels"]),), "float32")
    return {k: (shape, fp_dtype if is_fp_island(k) else dt) for k, (shape, dt) in specs.items()}


# ---------------------------------------------------------------------------------------------
# packing a student
# ---------------------------------------------------------------------------------------------
def _np(t) -> np.ndarray:
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t)


def _binary_weight(name: str, wq: np.ndarray, axis: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split a quantized weight into (signs, scale): ``wq = scale * (+-1)`` with one scale per
    slice along ``axis`` (``0``: columns of an ``[in, out]`` linear; ``1``: rows of an embedding)."""
    absw = np.abs(wq)
    scale = absw.max(axis=axis)
    ref = scale[None, :] if axis == 0 else scale[:, None]
    if not np.array_equal(absw, np.broadcast_to(ref, absw.shape)):
        raise ValueError(
            f"{name}: the quantized weight is not binary (alpha * +-1 with one alpha per output channel); "
            "only 1-bit weight quantizers (bibert, bwn, bwn_centered) can be packed"
        )
    return wq >= 0, scale.astype(np.float32)


def _activation_info(name: str, quantizer, family: str, signed: bool) -> Tuple[Optional[float], Optional[np.ndarray]]:
    """(alpha, beta) of an input quantizer: (None, None) for ``sign``; checked elastic otherwise."""
    from ..quant.quantizers import ElasticQuantizer, SignQuantizer

    if family == "sign":
        if not isinstance(quantizer, SignQuantizer):
            raise ValueError(f"{name}: expected a sign activation quantizer, found {type(quantizer).__name__}")
        return None, None
    if not isinstance(quantizer, ElasticQuantizer):
        raise ValueError(f"{name}: expected an elastic activation quantizer, found {type(quantizer).__name__}")
    if quantizer.signed != signed:
        raise ValueError(f"{name}: expected a {'signed' if signed else 'unsigned'} elastic quantizer")
    if float(_np(quantizer.initialized).reshape(-1)[0]) == 0.0:
        raise ValueError(
            f"{name}: the elastic quantizer is not initialised (its alpha is set from the first batch it sees); "
            "run the student on a batch (train or eval mode) before packing, so that packed and simulated "
            "models are the same"
        )
    alpha = float(np.float32(_np(quantizer.alpha).reshape(-1)[0]))
    if not alpha > 0.0:
        raise ValueError(f"{name}: elastic alpha must be positive, got {alpha}")
    return alpha, _np(quantizer.beta).astype(np.float32).reshape(-1)


def _pack_linear(
    tensors: Dict[str, np.ndarray], name: str, layer, family: str, signed: bool, elastic: bool
) -> Optional[float]:
    """Pack one QuantLinear under ``name``; returns the input alpha (elastic) or None."""
    import paddle

    from ..quant.layers import QuantLinear

    if not isinstance(layer, QuantLinear) or layer.weight_quantizer is None:
        raise ValueError(f"{name}: expected a QuantLinear with a 1-bit weight quantizer, found {type(layer).__name__}")
    if getattr(layer.weight_quantizer, "bits", 32) != 1:
        raise ValueError(f"{name}: weight quantizer {type(layer.weight_quantizer).__name__} is not 1-bit")
    with paddle.no_grad():
        wq = _np(layer.quantized_weight()).astype(np.float32)
    signs, alpha_w = _binary_weight(name, wq, axis=0)
    a_x, beta = _activation_info(f"{name}.input_quantizer", layer.input_quantizer, family, signed)
    alpha = alpha_w if a_x is None else (np.float32(a_x) * alpha_w).astype(np.float32)
    bias = _np(layer.bias).astype(np.float32) if layer.bias is not None else np.zeros(wq.shape[1], np.float32)
    tensors[f"{name}.bits"] = pack_bits(signs.T)
    tensors[f"{name}.alpha"] = alpha
    tensors[f"{name}.bias"] = bias
    if elastic:
        tensors[f"{name}.input_beta"] = beta
        tensors[f"{name}.input_alpha"] = np.array([a_x], dtype=np.float32)
    return a_x


def _engine_meta(student, quant) -> Dict[str, Any]:
    """Check that the student is one the engine runs and describe it (``binbert_packed``)."""
    from ..models.attention import QuantMultiHeadAttention
    from ..quant.quantizers import ElasticQuantizer, SignQuantizer

    arch = type(student).__name__
    if arch not in ARCHITECTURES:
        raise TypeError(f"pack_model supports {sorted(ARCHITECTURES)}; got {arch}")
    if quant.bits != (1, 1, 1):
        raise ValueError(f"pack_model needs a fully binary (1-1-1) student; {quant.name!r} is {quant.bits_str}")
    if quant.weight_quantizer not in ("bibert", "bwn", "bwn_centered") or quant.embedding_quantizer not in (
        "bibert",
        "bwn",
        "bwn_centered",
    ):
        raise ValueError(f"pack_model: weight/embedding quantizer of {quant.name!r} is not a 1-bit binarizer")
    if quant.activation_quantizer not in ("sign", "elastic"):
        raise ValueError(f"pack_model: activation quantizer {quant.activation_quantizer!r} is not binary")
    bert = student.bert
    cfg = student.config
    attn0 = bert.encoder.layers[0].self_attn
    if not isinstance(attn0, QuantMultiHeadAttention):
        raise ValueError("pack_model: the student's attention is not a QuantMultiHeadAttention")
    if attn0.variant == "bi":
        attention = "bool"
    elif isinstance(attn0.prob_quantizer, SignQuantizer):
        attention = "ones"  # sgn(softmax) is +1 at every real key: the BWN baseline's degenerate attention
    elif isinstance(attn0.prob_quantizer, ElasticQuantizer) and not attn0.prob_quantizer.signed:
        attention = "softmax_elastic"
    else:
        raise ValueError(f"pack_model: unsupported attention probability quantizer {attn0.prob_quantizer!r}")
    act = cfg.hidden_act
    if act not in ("gelu", "relu"):
        raise ValueError(f"pack_model: FFN activation {act!r} is not supported (gelu, relu)")
    lin2_q = bert.encoder.layers[0].linear2.input_quantizer
    unsigned = isinstance(lin2_q, ElasticQuantizer) and not lin2_q.signed
    if getattr(cfg, "pool_act", "tanh") != "tanh":
        raise ValueError(f"pack_model: pooler activation {cfg.pool_act!r} is not supported (tanh)")
    enc_eps = {float(getattr(layer, norm)._epsilon) for layer in bert.encoder.layers for norm in ("norm1", "norm2")}
    if len(enc_eps) != 1:
        raise ValueError(f"pack_model: the encoder LayerNorms use different epsilons {sorted(enc_eps)}")
    if getattr(cfg, "binbert_split", None):
        raise ValueError("pack_model: split (BinaryBERT TWS) layouts are not supported")
    if getattr(cfg, "binbert_half_width", None):
        raise ValueError(
            "pack_model: half-width layouts (BinaryBERT --half_width: q/k/v narrower than hidden_size) are not "
            "supported by the packed format, which assumes hidden x hidden attention projections"
        )
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "architecture": arch,
        "task": ARCHITECTURES[arch],
        "preset": quant.name,
        "hidden_size": int(cfg.hidden_size),
        "num_layers": int(cfg.num_hidden_layers),
        "num_heads": int(cfg.num_attention_heads),
        "intermediate_size": int(cfg.intermediate_size),
        "vocab_size": int(bert.embeddings.word_embeddings.weight.shape[0]),
        "max_position_embeddings": int(bert.embeddings.position_embeddings.weight.shape[0]),
        "type_vocab_size": int(bert.embeddings.token_type_embeddings.weight.shape[0]),
        "num_labels": int(student.classifier.weight.shape[1]),
        "pad_token_id": int(getattr(cfg, "pad_token_id", 0) or 0),
        "hidden_act": act,
        "attention": attention,
        "activation": quant.activation_quantizer,
        "ffn2_input": "unsigned" if unsigned else "signed",
        "pool_act": "tanh",
        "layer_norm_eps": {
            "embeddings": float(bert.embeddings.layer_norm._epsilon),
            "encoder": enc_eps.pop(),
        },
        "bit_order": BIT_ORDER,
    }


def _collect_tensors(student, meta: Dict[str, Any]) -> Dict[str, np.ndarray]:
    import paddle

    from ..quant.layers import QuantEmbedding

    bert = student.bert
    family = meta["activation"]
    elastic = family == "elastic"
    tensors: Dict[str, np.ndarray] = {}
    emb = bert.embeddings
    word = emb.word_embeddings
    if not isinstance(word, QuantEmbedding) or word.weight_quantizer is None:
        raise ValueError("bert.embeddings.word_embeddings: expected a 1-bit QuantEmbedding")
    with paddle.no_grad():
        # quantize the table with the rows on the last axis, the layout of the gathered rows the
        # forward pass quantizes ([batch, seq, hidden]), so that the per-row statistics agree
        table = word.weight.reshape([1] + list(word.weight.shape))
        wq = _np(word.weight_quantizer(table)).reshape(word.weight.shape).astype(np.float32)
    signs, alpha = _binary_weight("bert.embeddings.word_embeddings", wq, axis=1)
    tensors["bert.embeddings.word_embeddings.bits"] = pack_bits(signs)
    tensors["bert.embeddings.word_embeddings.alpha"] = alpha
    tensors["bert.embeddings.position_embeddings.weight"] = _np(emb.position_embeddings.weight).astype(np.float32)
    tensors["bert.embeddings.token_type_embeddings.weight"] = _np(emb.token_type_embeddings.weight).astype(np.float32)
    tensors["bert.embeddings.layer_norm.weight"] = _np(emb.layer_norm.weight).astype(np.float32)
    tensors["bert.embeddings.layer_norm.bias"] = _np(emb.layer_norm.bias).astype(np.float32)
    unsigned_ffn2 = meta["ffn2_input"] == "unsigned"
    for i, layer in enumerate(bert.encoder.layers):
        pre = f"bert.encoder.layers.{i}"
        attn = layer.self_attn
        for lin in LINEARS:
            sub = layer
            for part in lin.split("."):
                sub = getattr(sub, part)
            signed = not (lin == "linear2" and unsigned_ffn2)
            _pack_linear(tensors, f"{pre}.{lin}", sub, family, signed, elastic)
        for qname in ATTN_QUANTIZERS:
            a, b = _activation_info(f"{pre}.self_attn.{qname}", getattr(attn, qname), family, True)
            if meta["attention"] == "softmax_elastic":
                tensors[f"{pre}.self_attn.{qname}.alpha"] = np.array([a], dtype=np.float32)
                tensors[f"{pre}.self_attn.{qname}.beta"] = b
        if meta["attention"] == "softmax_elastic":
            a, b = _activation_info(f"{pre}.self_attn.prob_quantizer", attn.prob_quantizer, family, False)
            tensors[f"{pre}.self_attn.prob_quantizer.alpha"] = np.array([a], dtype=np.float32)
            tensors[f"{pre}.self_attn.prob_quantizer.beta"] = b
        for norm in ("norm1", "norm2"):
            tensors[f"{pre}.{norm}.weight"] = _np(getattr(layer, norm).weight).astype(np.float32)
            tensors[f"{pre}.{norm}.bias"] = _np(getattr(layer, norm).bias).astype(np.float32)
    if meta["task"] == "classification":
        _pack_linear(tensors, "bert.pooler.dense", bert.pooler.dense, family, True, elastic)
    tensors["classifier.weight"] = _np(student.classifier.weight).astype(np.float32)
    tensors["classifier.bias"] = _np(student.classifier.bias).astype(np.float32)
    return {k: np.ascontiguousarray(v) for k, v in tensors.items()}


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1)) & 0xFFFFFFFF


def is_packed_dir(folder: PathLike) -> bool:
    """Whether ``folder`` holds a packed model written by :func:`pack_model` (its ``config.json`` has
    the ``binbert_packed`` marker) and nothing :func:`pack_model` would not write (no sub-folders):
    such a folder is replaced by a new pack without ``overwrite=True``."""
    folder = Path(folder)
    cfg = folder / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    meta = config.get(PACKED_KEY) if isinstance(config, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME and not has_subfolders(folder)


def check_pack_output(
    out_dir: PathLike, source: Union[None, PathLike, Sequence[PathLike]] = None, overwrite: Optional[bool] = None
) -> Path:
    """Check that :func:`pack_model` may write ``out_dir`` (see :func:`pack_model`'s ``overwrite`` and
    ``source``); returns the resolved folder. Raises :class:`~paddle_binbert.export.outdir.OutputFolderError`."""
    sources = [source] if isinstance(source, (str, os.PathLike)) or source is None else list(source)
    return check_output_dir(
        out_dir,
        sources,
        overwrite=overwrite,
        is_previous=is_packed_dir,
        what="packed model",
        previous_desc=f"a previous packed model ({CONFIG_NAME} with the {PACKED_KEY!r} marker, no sub-folders)",
    )


def pack_model(
    student,
    out_dir: PathLike,
    tokenizer=None,
    overwrite: Optional[bool] = None,
    fp_dtype: str = "float32",
    source: Union[None, PathLike, Sequence[PathLike]] = None,
) -> Path:
    """Write the packed 1-bit model of ``student`` to ``out_dir`` (see the module docstring).

    Args:
        student: a ``BertForSequenceClassification`` / ``BertForQuestionAnswering`` quantized with
            :func:`~paddle_binbert.quantize_model` using the ``bibert``, ``bit`` or ``bwn`` preset (or
            any 1-1-1 config with sign / elastic activations). BiT's elastic quantizers must be
            initialised (run one batch first).
        out_dir: destination folder; written to a temporary folder next to it, then swapped into
            place atomically (an error while writing leaves a previous ``out_dir`` unchanged).
        tokenizer: optional PaddleNLP tokenizer saved alongside (``save_pretrained``).
        overwrite: what an existing ``out_dir`` may be. None (default): a new or empty folder, or a
            previous packed model (replaced); any other non-empty folder or file raises
            :class:`~paddle_binbert.export.outdir.OutputFolderError` (a ``FileExistsError``). True
            (CLI ``--overwrite``): replace whatever ``out_dir`` holds. False (CLI ``--no_overwrite``):
            refuse any existing non-empty ``out_dir``.
        fp_dtype: storage of the FP islands (position / token-type embeddings, LayerNorms, head):
            ``float32`` (default; the engine's logits equal the student's) or ``float16`` (about 5%
            smaller for BERT-base; the engine then equals the student with those tensors rounded to
            float16, see :func:`round_fp_islands`).
        source: the folder (or files) the student was loaded from. ``out_dir`` may not be it, contain
            it, or be a non-empty folder inside it that is not a previous packed model, whatever
            ``overwrite`` says: the input is never deleted.

    The files get the modes a plain ``open()`` gives (``0644`` under the usual umask ``022``).

    Returns the folder path. Raises ``TypeError`` / ``ValueError`` naming the layer when the student
    cannot be packed.
    """
    from ..models.quantize import quant_config_of

    out = check_pack_output(out_dir, source, overwrite)
    quant = quant_config_of(student)
    if quant is None:
        raise ValueError("pack_model: the model is not quantized (no binbert_quant_config); call quantize_model first")
    if fp_dtype not in FP_DTYPES:
        raise ValueError(f"fp_dtype must be one of {FP_DTYPES}, got {fp_dtype!r}")
    meta = _engine_meta(student, quant)
    meta["fp_dtype"] = fp_dtype
    tensors = _collect_tensors(student, meta)
    if fp_dtype != "float32":
        tensors = {k: (v.astype(fp_dtype) if is_fp_island(k) else v) for k, v in tensors.items()}
    specs = expected_tensor_specs(meta)
    if set(specs) != set(tensors):  # internal consistency: the writer and the validator agree
        raise AssertionError(f"packed tensor names differ from the spec: {sorted(set(specs) ^ set(tensors))}")

    config = student.config.to_dict() if hasattr(student.config, "to_dict") else dict(student.config)
    config["architectures"] = [meta["architecture"]]
    config["binbert_quant_config"] = quant.to_dict()
    config[PACKED_KEY] = meta

    from safetensors import numpy as st_numpy

    with staged_output(out, recheck=lambda: check_pack_output(out, source, overwrite)) as tmp:
        crcs = {name: _crc(arr) for name, arr in tensors.items()}
        st_numpy.save_file(
            tensors,
            str(tmp / WEIGHTS_NAME),
            metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION), CRC_KEY: json.dumps(crcs)},
        )
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, sort_keys=True, default=_json_default)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out


def round_fp_islands(student, dtype: str = "float16"):
    """Round the student's FP-island parameters (the tensors ``fp_dtype`` applies to) to ``dtype`` and
    back, in place, so that the simulated student equals a model packed with ``fp_dtype=dtype``."""
    import paddle

    with paddle.no_grad():
        for name, param in student.named_parameters():
            if is_fp_island(name):
                param.set_value(param.numpy().astype(dtype).astype(np.float32))
    return student


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------------------------
_ST_DTYPES = {
    "U64": "uint64",
    "F32": "float32",
    "F64": "float64",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
}


def _read_header(path: Path) -> Tuple[Dict[str, Any], int]:
    """Parse a safetensors header by hand (so that truncation can name the tensor)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise PackedFormatError(f"{path}: truncated ({size} bytes; not even the 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 * 2**20:
            raise PackedFormatError(
                f"{path}: truncated or corrupted header (declares {n} header bytes, the file has {size})"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackedFormatError(f"{path}: corrupted safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise PackedFormatError(f"{path}: corrupted safetensors header (not a JSON object)")
    data_bytes = size - 8 - n
    entries = sorted(
        ((k, v) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)),
        key=lambda kv: kv[1].get("data_offsets", [0, 0])[1],
    )
    for name, info in entries:
        offsets = info.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise PackedFormatError(f"{path}: tensor {name!r} has a corrupted header entry")
        if offsets[1] > data_bytes:
            raise PackedFormatError(
                f"{path}: truncated: tensor {name!r} needs bytes {offsets[0]}..{offsets[1]} of the data section, "
                f"the file holds {max(data_bytes, 0)}"
            )
    return header, data_bytes


def load_packed(out_dir: PathLike, verify_checksums: bool = True) -> PackedModel:
    """Read and validate a folder written by :func:`pack_model`.

    Raises :class:`PackedFormatError` naming the file (and the tensor) when something is missing,
    truncated, corrupted, or of the wrong shape / dtype.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise PackedFormatError(f"{folder} is not a packed model folder (no such directory)")
    cfg_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not cfg_path.is_file():
        raise PackedFormatError(f"{cfg_path} is missing")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackedFormatError(f"{cfg_path} is not valid JSON ({err})") from None
    meta = config.get(PACKED_KEY) if isinstance(config, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise PackedFormatError(f"{cfg_path} has no {PACKED_KEY!r} entry: not a packed binbert model")
    if meta.get("version") != FORMAT_VERSION:
        raise PackedFormatError(f"{cfg_path}: packed format version {meta.get('version')} != {FORMAT_VERSION}")
    try:
        specs = expected_tensor_specs(meta)
    except (KeyError, TypeError, ValueError) as err:
        raise PackedFormatError(f"{cfg_path}: incomplete {PACKED_KEY} entry ({err!r})") from None
    if "binbert_quant_config" not in config:
        raise PackedFormatError(f"{cfg_path} has no binbert_quant_config")
    if not weights.is_file():
        raise PackedFormatError(f"{weights} is missing")

    header, _ = _read_header(weights)
    problems: List[str] = []
    names = {k for k in header if k != "__metadata__"}
    missing, unexpected = sorted(set(specs) - names), sorted(names - set(specs))
    for label, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            problems.append(f"{label} tensor(s): " + ", ".join(items[:10]) + (" ..." if len(items) > 10 else ""))
    for name in sorted(names & set(specs)):
        shape, dtype = specs[name]
        got_shape = tuple(header[name].get("shape", ()))
        got_dtype = _ST_DTYPES.get(header[name].get("dtype"), header[name].get("dtype"))
        if got_dtype != dtype:
            problems.append(f"tensor {name!r} has dtype {got_dtype}, expected {dtype}")
        if got_shape != shape:
            problems.append(f"tensor {name!r} has shape {list(got_shape)}, expected {list(shape)}")
    if problems:
        raise PackedFormatError(f"{weights} does not match {cfg_path}: " + "; ".join(problems))

    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(weights))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise PackedFormatError(f"{weights} is corrupted ({type(err).__name__}: {err})") from None

    if verify_checksums:
        crcs_raw = (header.get("__metadata__") or {}).get(CRC_KEY)
        if crcs_raw is None:
            raise PackedFormatError(f"{weights}: no {CRC_KEY} checksums in the metadata")
        try:
            crcs = json.loads(crcs_raw)
        except json.JSONDecodeError:
            raise PackedFormatError(f"{weights}: corrupted {CRC_KEY} metadata") from None
        for name in sorted(specs):
            if crcs.get(name) != _crc(tensors[name]):
                raise PackedFormatError(f"{weights}: tensor {name!r} is corrupted (CRC32 mismatch)")
    h, inter = int(meta["hidden_size"]), int(meta["intermediate_size"])
    for name, arr in tensors.items():
        if name.endswith(".bits"):
            k = inter if ".linear2." in name else h
            if not _padding_ok(arr, k):
                raise PackedFormatError(f"{weights}: tensor {name!r} has non-zero padding bits")
        elif not np.all(np.isfinite(arr)):
            raise PackedFormatError(f"{weights}: tensor {name!r} holds NaN or infinite values")
    return PackedModel(path=folder, config=config, meta=meta, tensors=tensors)


def packed_size_report(packed: PackedModel) -> Dict[str, int]:
    """Bytes of the packed tensors by kind: ``binary`` (sign bits), ``scales`` (alpha / beta /
    bias of binary layers), ``fp_islands`` (embeddings, LayerNorms, head) and the file ``total``."""
    out = {"binary": 0, "scales": 0, "fp_islands": 0}
    for name, arr in packed.tensors.items():
        kind = "binary" if name.endswith(".bits") else "fp_islands" if is_fp_island(name) else "scales"
        out[kind] += int(arr.nbytes)
    out["total"] = packed.size_bytes()
    return out


# ---------------------------------------------------------------------------------------------
# command line: paddle-binbert pack STUDENT OUT
# ---------------------------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> int:
    """``paddle-binbert pack STUDENT_DIR OUT_DIR [--fp16_islands] [--verify N] [--overwrite | --no_overwrite]``.

    Loads a saved binarized student (``quantize_model`` + ``save_pretrained``), writes its packed
    1-bit model (with the tokenizer files found in STUDENT_DIR) and prints the sizes; ``--verify N``
    then runs the engine and the simulated student on N random sequences and prints the largest
    relative difference of their logits. OUT_DIR may be new, empty or a previous packed model;
    ``--overwrite`` replaces any other folder; OUT_DIR may never be, contain, or be a non-empty
    folder inside STUDENT_DIR.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="paddle-binbert pack", description=main.__doc__)
    parser.add_argument("student", help="folder of a binarized student (bibert / bit / bwn preset)")
    parser.add_argument("out", help="destination folder of the packed model")
    parser.add_argument("--fp16_islands", action="store_true", help="store embeddings / LayerNorms / head as float16")
    replace = parser.add_mutually_exclusive_group()
    replace.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT even when it is not a previous packed model (deletes its contents; never the student)",
    )
    replace.add_argument("--no_overwrite", action="store_true", help="fail if OUT exists and is not empty")
    parser.add_argument("--verify", type=int, default=0, metavar="N", help="compare engine and student on N inputs")
    args = parser.parse_args(argv)
    overwrite = True if args.overwrite else False if args.no_overwrite else None

    from ..checkpoints import load_model

    try:
        check_pack_output(args.out, args.student, overwrite)  # before the (slow) load
        student = load_model(args.student)
        tokenizer = None
        if os.path.isfile(os.path.join(args.student, "vocab.txt")):
            from paddlenlp.transformers import BertTokenizer

            tokenizer = BertTokenizer.from_pretrained(args.student)
        out = pack_model(
            student,
            args.out,
            tokenizer=tokenizer,
            overwrite=overwrite,
            fp_dtype="float16" if args.fp16_islands else "float32",
            source=args.student,
        )
    except (OutputFolderError, FileNotFoundError) as err:
        print(f"paddle-binbert pack: error: {err}", file=sys.stderr)
        return 2
    packed = load_packed(out)
    sizes = packed_size_report(packed)
    print(
        f"packed {packed.meta['architecture']} ({packed.meta['preset']}) to {out}: "
        f"{sizes['total'] / 2**20:.2f} MiB (sign bits {sizes['binary'] / 2**20:.2f}, scales/biases "
        f"{sizes['scales'] / 2**20:.2f}, FP islands {sizes['fp_islands'] / 2**20:.2f})"
    )
    if args.verify > 0:
        import paddle

        from ..engine import load as engine_load

        if args.fp16_islands:
            round_fp_islands(student, "float16")
        eng = engine_load(packed)
        rng = np.random.default_rng(0)
        seq = min(128, int(packed.meta["max_position_embeddings"]))
        ids = rng.integers(1, int(packed.meta["vocab_size"]), (args.verify, seq))
        with paddle.no_grad():
            ref = student(paddle.to_tensor(ids))
        ref = np.stack([r.numpy() for r in ref]) if isinstance(ref, (tuple, list)) else ref.numpy()
        got = eng(ids)
        got = np.stack(got) if isinstance(got, tuple) else got
        err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-30))
        print(f"engine vs simulated student on {args.verify} random sequences: max relative difference {err:.2e}")
    return 0
