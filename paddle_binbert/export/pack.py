"""Packing a binarized student into the packed 1-bit model folder run by the binary engine.

``pack_model(student, out_dir, tokenizer=None)`` checks that a student quantized with the ``bibert``,
``bit`` or ``bwn`` preset (``BertForSequenceClassification`` or ``BertForQuestionAnswering``) is one
the engine runs, extracts its sign bits, scales and FP islands, and writes them with
:func:`paddle_binbert.format.packed.write_packed`; the folder's specification (file names, tensor
names, shapes, dtypes and metadata fields) and its validating reader ``load_packed`` live in
:mod:`paddle_binbert.format.packed`.

The folder is written to a temporary folder next to ``out_dir`` and swapped into place atomically;
an existing ``out_dir`` is only replaced when it is a previous packed model (or with
``overwrite=True`` / ``--overwrite``), and never when it is, contains or would delete the student
folder (see :mod:`paddle_binbert.export.outdir`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import staged_output
from ..format.packed import (
    ARCHITECTURES,
    ATTN_QUANTIZERS,
    CONFIG_NAME,
    FP_DTYPES,
    LINEARS,
    PACKED_KEY,
    QUANT_CONFIG_KEY,
    has_packed_marker,
    is_fp_island,
    load_packed,
    pack_bits,
    packed_size_report,
    write_packed,
)
from .outdir import OutputFolderError, check_output_dir, has_subfolders

__all__ = [
    "check_pack_output",
    "is_packed_dir",
    "pack_model",
    "round_fp_islands",
]

PathLike = Union[str, os.PathLike]


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


def is_packed_dir(folder: PathLike) -> bool:
    """Whether ``folder`` holds a packed model written by :func:`pack_model` (its ``config.json`` has
    the ``binbert_packed`` marker) and nothing :func:`pack_model` would not write (no sub-folders):
    such a folder is replaced by a new pack without ``overwrite=True``."""
    return has_packed_marker(folder) and not has_subfolders(folder)


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
    from ..models.quantize import FILTER_KEY, quant_config_of

    out = check_pack_output(out_dir, source, overwrite)
    quant = quant_config_of(student)
    if quant is None:
        raise ValueError("pack_model: the model is not quantized (no binbert_quant_config); call quantize_model first")
    if getattr(student.config, FILTER_KEY, None):
        raise ValueError(
            f"pack_model: the model was quantized with a custom filter_fn ({FILTER_KEY} lists "
            f"{sorted(getattr(student.config, FILTER_KEY))[:5]}...); the packed engine quantizes every layer "
            "as quantization_role does"
        )
    if fp_dtype not in FP_DTYPES:
        raise ValueError(f"fp_dtype must be one of {FP_DTYPES}, got {fp_dtype!r}")
    meta = _engine_meta(student, quant)
    meta["fp_dtype"] = fp_dtype
    tensors = _collect_tensors(student, meta)
    config = student.config.to_dict() if hasattr(student.config, "to_dict") else dict(student.config)
    config["architectures"] = [meta["architecture"]]
    config[QUANT_CONFIG_KEY] = quant.to_dict()
    config[PACKED_KEY] = meta

    with staged_output(out, recheck=lambda: check_pack_output(out, source, overwrite)) as tmp:
        write_packed(tmp, config, tensors)
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
