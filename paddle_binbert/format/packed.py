"""The packed 1-bit model folder: its specification, writer and validating reader.

:func:`paddle_binbert.export.pack_model` writes a folder through :func:`write_packed`;
:func:`paddle_binbert.engine.load` and :func:`paddle_binbert.runtime.load` read it through
:func:`load_packed`. numpy, safetensors and json only (no Paddle), so that the Paddle-free runtime
can use it::

    folder/
      model.safetensors   every tensor (no pickle: loading cannot run code), CRC32 per tensor
                          in the header metadata (``binbert_crc32``)
      config.json         BertConfig + architectures + binbert_quant_config + binbert_packed
      vocab.txt, ...      the tokenizer files (when the exporter was given a tokenizer)

Metadata (``config.json["binbert_packed"]``, :data:`META_FIELDS`): ``format`` (``binbert-packed``),
``version`` (1), ``architecture`` (``BertForSequenceClassification`` / ``BertForQuestionAnswering``),
``task`` (``classification`` / ``question_answering``, implied by the architecture), ``preset``;
the sizes ``hidden_size``, ``num_layers``, ``num_heads`` (divides ``hidden_size``),
``intermediate_size``, ``vocab_size``, ``max_position_embeddings``, ``type_vocab_size``,
``num_labels`` (positive integers) and ``pad_token_id`` (``0 <= id < vocab_size``); ``hidden_act``
(``gelu`` / ``relu``), ``attention`` (``bool``: BiBERT; ``softmax_elastic``: BiT; ``ones``: the BWN
baseline's ``sgn(softmax)``), ``activation`` (``sign`` / ``elastic``), ``ffn2_input`` (``signed`` /
``unsigned``), ``pool_act`` (``tanh``), ``layer_norm_eps`` (``{"embeddings": e, "encoder": e}``),
``bit_order`` (the text below) and ``fp_dtype`` (``float32`` / ``float16``; ``float32`` when absent).

Tensors (names follow the PaddleNLP model; :func:`expected_tensor_specs` derives every name, shape
and dtype from the metadata alone; ``L`` layers, hidden ``H``, FFN ``I``):

- per binary linear ``<name>`` (q/k/v/out projections, ``linear1``, ``linear2``, pooler dense):
  ``<name>.bits`` uint64 ``[out, ceil(in/64)]``: sign bits of the quantized weight ``Wq`` (``[in, out]``
  in Paddle) packed along the input dimension, value ``i`` in bit ``i % 64`` of word ``i // 64``
  (little-endian), 1 for ``+1``, padding bits 0 (:func:`pack_bits`);
  ``<name>.alpha`` float32 ``[out]``: ``alpha_j = |Wq[:, j]|`` times the activation scale of the
  input where the input quantizer has one (BiT elastic: ``alpha_x * alpha_w``), so that the
  linear is exactly ``y_j = alpha_j * dot(bits(x), bits(w_j)) + b_j``;
  ``<name>.bias`` float32 ``[out]``;
  elastic activations only: ``<name>.input_beta`` float32 ``[in]`` and ``<name>.input_alpha`` float32
  ``[1]`` of the input quantizer (the bits are ``sgn(x - beta)``, or ``1[(x - beta)/alpha >= 1/2]``
  for the unsigned FFN2 input).
- word embedding: ``bert.embeddings.word_embeddings.bits`` uint64 ``[vocab, ceil(H/64)]`` and
  ``.alpha`` float32 ``[vocab]`` (row ``v`` is ``alpha_v * (+-1)``).
- ``softmax_elastic`` attention: ``...self_attn.{query,key,value}_quantizer.{alpha [1], beta [H]}`` and
  ``...self_attn.prob_quantizer.{alpha [1], beta [1]}``.
- FP islands (:func:`is_fp_island`): position / token-type embeddings, every LayerNorm, the
  classifier / QA head, stored as ``fp_dtype``.

:func:`load_packed` validates everything: the config and every metadata field (naming the field),
the safetensors header against the file size (a truncated file names the first incomplete tensor),
the set of tensor names, every shape and dtype (naming the tensor), the per-tensor CRC32 (a
corrupted byte names its tensor), the zero padding bits and finite values.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np

__all__ = [
    "ARCHITECTURES",
    "BIT_ORDER",
    "CONFIG_NAME",
    "CRC_KEY",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FP_DTYPES",
    "META_FIELDS",
    "PACKED_KEY",
    "QUANT_CONFIG_KEY",
    "WEIGHTS_NAME",
    "PackedFormatError",
    "PackedModel",
    "check_meta",
    "expected_tensor_specs",
    "has_packed_marker",
    "is_fp_island",
    "load_packed",
    "pack_bits",
    "packed_size_report",
    "unpack_bits",
    "write_packed",
]

PathLike = Union[str, os.PathLike]

FORMAT_NAME = "binbert-packed"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PACKED_KEY = "binbert_packed"
QUANT_CONFIG_KEY = "binbert_quant_config"
CRC_KEY = "binbert_crc32"
BIT_ORDER = (
    "uint64 words, little-endian; value i of a row in bit i % 64 of word i // 64; bit 1 = +1 "
    "(level 1 for unsigned activations); padding bits are 0"
)
#: model class -> task
ARCHITECTURES = {
    "BertForSequenceClassification": "classification",
    "BertForQuestionAnswering": "question_answering",
}
#: the binary linears of every encoder layer (attribute paths of a PaddleNLP ``TransformerEncoderLayer``)
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "linear1", "linear2")
#: the attention input quantizers stored for ``softmax_elastic`` attention
ATTN_QUANTIZERS = ("query_quantizer", "key_quantizer", "value_quantizer")
FP_DTYPES = ("float32", "float16")

_SIZES = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_labels",
)
#: the ``binbert_packed`` metadata fields: name -> allowed values (a tuple), or the type of the value
#: (``int`` fields are positive, ``pad_token_id`` non-negative; ``layer_norm_eps`` holds positive
#: ``embeddings`` and ``encoder`` numbers). ``fp_dtype`` may be absent (``float32``).
META_FIELDS: Dict[str, Any] = {
    "format": (FORMAT_NAME,),
    "version": (FORMAT_VERSION,),
    "architecture": tuple(ARCHITECTURES),
    "task": tuple(ARCHITECTURES.values()),
    "preset": str,
    **{name: int for name in _SIZES},
    "pad_token_id": int,
    "hidden_act": ("gelu", "relu"),
    "attention": ("bool", "softmax_elastic", "ones"),
    "activation": ("sign", "elastic"),
    "ffn2_input": ("signed", "unsigned"),
    "pool_act": ("tanh",),
    "layer_norm_eps": dict,
    "bit_order": str,
    "fp_dtype": FP_DTYPES,
}
_META_DEFAULTS = {"fp_dtype": "float32"}


class PackedFormatError(ValueError):
    """A packed model folder is missing, corrupted, truncated or inconsistent (the message names
    the file and, where it applies, the metadata field or the tensor)."""


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


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1)) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# the specification
# ---------------------------------------------------------------------------------------------
def check_meta(meta: Any, source: str) -> Dict[str, Any]:
    """Check a ``binbert_packed`` metadata dict against :data:`META_FIELDS`; returns it with the
    defaults of absent optional fields filled in.

    Raises :class:`PackedFormatError` naming ``source`` (the file) and the first bad field: missing,
    of the wrong type, out of range, or inconsistent with another field (``task`` against
    ``architecture``, ``num_heads`` not dividing ``hidden_size``, ``pad_token_id >= vocab_size``).
    """
    if not isinstance(meta, Mapping):
        raise PackedFormatError(f"{source}: {PACKED_KEY} must be a JSON object, got {type(meta).__name__}")
    out = dict(_META_DEFAULTS, **meta)

    def bad(field: str, expected: str) -> PackedFormatError:
        got = "missing" if field not in out else f"{out[field]!r}"
        return PackedFormatError(f"{source}: {PACKED_KEY}.{field} is {got}; expected {expected}")

    for field, rule in META_FIELDS.items():
        if field not in out:
            raise bad(field, _describe(rule, field))
        value = out[field]
        if isinstance(rule, tuple):
            ok = any(value == v and type(value) is type(v) for v in rule)
        elif rule is int:
            ok = _is_number(value, int) and value >= (0 if field == "pad_token_id" else 1)
        elif rule is dict:
            ok = isinstance(value, dict) and all(
                _is_number(value.get(k), (int, float)) and value[k] > 0 for k in ("embeddings", "encoder")
            )
        else:
            ok = isinstance(value, rule)
        if not ok:
            raise bad(field, _describe(rule, field))
    if out["task"] != ARCHITECTURES[out["architecture"]]:
        raise bad("task", f"{ARCHITECTURES[out['architecture']]!r} for {out['architecture']}")
    if out["hidden_size"] % out["num_heads"]:
        raise bad("num_heads", f"a divisor of hidden_size {out['hidden_size']}")
    if out["pad_token_id"] >= out["vocab_size"]:
        raise bad("pad_token_id", f"less than vocab_size {out['vocab_size']}")
    return out


def _is_number(value: Any, types) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def _describe(rule: Any, field: str) -> str:
    if isinstance(rule, tuple):
        return "one of " + ", ".join(repr(v) for v in rule)
    if rule is int:
        return "a non-negative integer" if field == "pad_token_id" else "a positive integer"
    if rule is dict:
        return 'an object {"embeddings": eps, "encoder": eps} with positive numbers'
    return f"a {rule.__name__}"


def expected_tensor_specs(meta: Mapping[str, Any]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """Every tensor name of a packed model with its expected ``(shape, numpy dtype name)``,
    derived from the ``binbert_packed`` metadata alone (checked with :func:`check_meta` first)."""
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


def _spec_problems(
    specs: Mapping[str, Tuple[Tuple[int, ...], str]], found: Mapping[str, Tuple[Tuple[int, ...], str]]
) -> List[str]:
    """What differs between the expected and the found ``name -> (shape, dtype)``: missing and
    unexpected names, then every wrong dtype and shape (one line each, naming the tensor)."""
    problems: List[str] = []
    missing, unexpected = sorted(set(specs) - set(found)), sorted(set(found) - set(specs))
    for label, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            problems.append(f"{label} tensor(s): " + ", ".join(items[:10]) + (" ..." if len(items) > 10 else ""))
    for name in sorted(set(found) & set(specs)):
        (shape, dtype), (got_shape, got_dtype) = specs[name], found[name]
        if got_dtype != dtype:
            problems.append(f"tensor {name!r} has dtype {got_dtype}, expected {dtype}")
        if tuple(got_shape) != tuple(shape):
            problems.append(f"tensor {name!r} has shape {list(got_shape)}, expected {list(shape)}")
    return problems


# ---------------------------------------------------------------------------------------------
# the packed model
# ---------------------------------------------------------------------------------------------
@dataclass
class PackedModel:
    """A validated packed folder: ``config`` (config.json), ``meta`` (its ``binbert_packed``
    entry, optional fields filled in), ``tensors`` (name -> numpy array) and the folder ``path``."""

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

        return QuantConfig.from_dict(self.config[QUANT_CONFIG_KEY], source=str(self.path / CONFIG_NAME))

    def size_bytes(self) -> int:
        """Size of ``model.safetensors`` on disk."""
        return (self.path / WEIGHTS_NAME).stat().st_size


def packed_size_report(packed: PackedModel) -> Dict[str, int]:
    """Bytes of the packed tensors by kind: ``binary`` (sign bits), ``scales`` (alpha / beta /
    bias of binary layers), ``fp_islands`` (embeddings, LayerNorms, head) and the file ``total``."""
    out = {"binary": 0, "scales": 0, "fp_islands": 0}
    for name, arr in packed.tensors.items():
        kind = "binary" if name.endswith(".bits") else "fp_islands" if is_fp_island(name) else "scales"
        out[kind] += int(arr.nbytes)
    out["total"] = packed.size_bytes()
    return out


def has_packed_marker(folder: PathLike) -> bool:
    """Whether ``folder/config.json`` is readable JSON with a ``binbert_packed`` entry of this
    format (the marker only: nothing else is checked; :func:`load_packed` validates)."""
    cfg = Path(folder) / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    meta = config.get(PACKED_KEY) if isinstance(config, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def write_packed(folder: PathLike, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` of a packed model into the existing ``folder``.

    Args:
        folder: where to write (the exporter passes a temporary folder it then swaps into place).
        config: the model's config.json content: the ``BertConfig`` fields, ``architectures``,
            ``binbert_quant_config`` and the ``binbert_packed`` metadata (``format``, ``version`` and
            ``bit_order`` are set here; the other :data:`META_FIELDS` come from the exporter).
        tensors: every tensor of :func:`expected_tensor_specs`, the FP islands in float32 or already
            in ``fp_dtype`` (they are cast to ``fp_dtype`` here).

    Raises ``ValueError`` (a :class:`PackedFormatError`) naming the field or tensor when the metadata or
    the tensors do not follow the specification; nothing is written then.
    """
    folder = Path(folder)
    config = dict(config)
    if QUANT_CONFIG_KEY not in config:
        raise PackedFormatError(f"write_packed: config has no {QUANT_CONFIG_KEY}")
    meta = check_meta(
        dict(config.get(PACKED_KEY) or {}, format=FORMAT_NAME, version=FORMAT_VERSION, bit_order=BIT_ORDER),
        "write_packed",
    )
    config[PACKED_KEY] = meta
    fp_dtype = meta["fp_dtype"]
    arrays = {
        name: np.ascontiguousarray(arr.astype(fp_dtype) if is_fp_island(name) else arr)
        for name, arr in ((k, np.asarray(v)) for k, v in tensors.items())
    }
    found = {name: (arr.shape, arr.dtype.name) for name, arr in arrays.items()}
    problems = _spec_problems(expected_tensor_specs(meta), found)
    if problems:
        raise PackedFormatError("write_packed: the tensors do not follow the packed format: " + "; ".join(problems))
    # the reader refuses non-finite values, so refuse them before writing a folder that cannot load
    bad = sorted(n for n, a in arrays.items() if a.dtype.kind == "f" and not np.all(np.isfinite(a)))
    if bad:
        raise PackedFormatError(f"write_packed: tensor(s) {', '.join(map(repr, bad))} hold NaN or infinite "
                                "values (a diverged student?); nothing written")

    from safetensors import numpy as st_numpy

    crcs = {name: _crc(arr) for name, arr in arrays.items()}
    st_numpy.save_file(
        arrays,
        str(folder / WEIGHTS_NAME),
        metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION), CRC_KEY: json.dumps(crcs)},
    )
    with open(folder / CONFIG_NAME, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2, sort_keys=True, default=_json_default)
    return folder


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------------------------
# reading and validation
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


def load_packed(folder: PathLike, verify_checksums: bool = True) -> PackedModel:
    """Read and validate a packed model folder (written by :func:`write_packed`).

    Raises :class:`PackedFormatError` naming the file (and the metadata field or the tensor) when
    something is missing, truncated, corrupted, out of range, or of the wrong shape / dtype.
    """
    folder = Path(folder)
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
    meta = check_meta(meta, str(cfg_path))
    specs = expected_tensor_specs(meta)
    if QUANT_CONFIG_KEY not in config:
        raise PackedFormatError(f"{cfg_path} has no {QUANT_CONFIG_KEY}")
    if not weights.is_file():
        raise PackedFormatError(f"{weights} is missing")

    header, _ = _read_header(weights)
    found = {
        name: (tuple(info.get("shape", ())), _ST_DTYPES.get(info.get("dtype"), info.get("dtype")))
        for name, info in header.items()
        if name != "__metadata__"
    }
    problems = _spec_problems(specs, found)
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
    h, inter = meta["hidden_size"], meta["intermediate_size"]
    for name, arr in tensors.items():
        if name.endswith(".bits"):
            k = inter if ".linear2." in name else h
            if not _padding_ok(arr, k):
                raise PackedFormatError(f"{weights}: tensor {name!r} has non-zero padding bits")
        elif not np.all(np.isfinite(arr)):
            raise PackedFormatError(f"{weights}: tensor {name!r} holds NaN or infinite values")
    return PackedModel(path=folder, config=config, meta=meta, tensors=tensors)
