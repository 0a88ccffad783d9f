"""Quantized BiT / BinaryBERT (PyTorch reference) checkpoints mapped onto paddle_binbert students.

The reference releases (BiT: ``facebookresearch/bit``; BinaryBERT:
``huawei-noah/Pretrained-Language-Model/BinaryBERT``) save a Hugging Face-style BERT state dict
whose quantized layers carry extra tensors. Their names and meanings (read from the releases'
``transformer/utils_quant.py`` and ``modeling_*quant.py``):

- ``<linear>.input_clip_val``: the input quantizer's learnable scale, a 0-d tensor for the
  elastic (BiT) and LSQ (BinaryBERT) quantizers, a ``[lo, hi]`` pair for the uniform one;
- ``<linear>.move.bias`` (BiT only, ``[in]``): a learnable shift added to the input before the
  elastic quantizer, ``q = alpha * Q((x + move) / alpha)``;
- ``attention.self.clip_{query,key,value,attn}``: the scales of the Q, K, V and attention
  probability quantizers;
- ``attention.self.move_{q,k,v}.bias`` (BiT): computed but not used by the released forward pass
  (it quantizes the un-shifted projections), so they are ignored;
- ``weight_clip_val`` / ``embed_clip_val``: only with learnable weight quantizers (uniform / LSQ),
  absent for BWN / TWN weights.

Which quantizer each site uses is set by flags of the reference config (saved in its
config.json; the releases' command-line defaults are assumed when a flag is absent):
``weight_bits``, ``input_bits``, ``weight_quant_method`` (``bwn`` / ``twn``),
``input_quant_method`` (``elastic`` / ``lsq`` / ``uniform``), ``sym_quant_qkvo`` (Q/K/V and
linear inputs, default symmetric), ``sym_quant_ffn_attn`` (attention probabilities and the FFN2
input, default asymmetric), ``weight_layerwise`` (default True), ``embed_layerwise`` (default
False), ``input_layerwise`` (default True), ``not_quantize_attention`` (BiT, default False).

Mapping onto ours (exact: the same function of the same numbers):

- BiT elastic activations: ``alpha = max(clip, 1e-5)`` (the reference clamps it the same way),
  ``beta = -move`` (0 for Q/K/V and the probabilities); signed on the signed sites, unsigned
  ``{0, alpha}`` on the probabilities and the post-ReLU FFN2 input;
- LSQ (symmetric): ``step = clip``; uniform (symmetric, ``[-c, c]``): ``clip_val = c``;
- weights: BiT's centred BWN and BinaryBERT's BWN / TWN with one scale per matrix
  (``weight_layerwise``) are our ``bwn_centered`` / ``bwn`` / ``twn`` with ``axis=None``; Linear
  weights are transposed from torch ``[out, in]`` to Paddle ``[in, out]``;
- word embedding: BinaryBERT's row-wise BWN / TWN are ours. BiT's embedding binarizer scales per
  row but centres with the mean of the whole table, which ours does not do; its *binarized* table
  is loaded instead (ours reproduces it exactly: each row is ``+-alpha_row``), which keeps the
  forward pass but not the latent weights (a log line says so); a row of all-equal signs, which
  ours could not reproduce, is an error.

Refused with an error naming the keys and the reason: asymmetric quantizers (BinaryBERT's
defaults for the probabilities and the FFN2 input subtract the batch minimum before quantizing,
``AsymLsqQuantizer`` / ``AsymQuantizer``), a symmetric quantizer where ours is unsigned (or the
other way round), an asymmetric ``[lo, hi]`` clip, multi-bit elastic activations, learnable weight
quantizers, per-row linear weights. ``allow_approximate=True`` maps the asymmetric LSQ of the
non-negative sites (probabilities, post-ReLU FFN2 input) to our unsigned LSQ with the same step:
exact whenever the quantized tensor's minimum is 0 (any padding in the batch; any ReLU zero),
approximate otherwise; the keys are logged. Rounding ties (``torch.sign(0) = 0`` and round half to
even in the reference; ``sgn(0) = +1`` and half up here) are measure-zero differences.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ..models.quantize import get_bert
from ..quant.config import QuantConfig, available_presets
from ..quant.layers import QuantEmbedding, QuantLinear
from ..quant.quantizers import ElasticQuantizer, LsqQuantizer, UniformClipQuantizer
from .files import StateDict
from .keys import HF_LAYER_NAMES, hf_to_paddle_state_dict, strip_wrappers

logger = logging.getLogger(__name__)

__all__ = [
    "ReferenceQuantError",
    "ReferenceRecipe",
    "convert_reference_state",
    "is_reference_quant_state",
    "reference_recipe",
]

_QUANT_KEY_RE = re.compile(
    r"(^|\.)(input_clip_val|weight_clip_val|embed_clip_val|clip_query|clip_key|clip_value|clip_attn)$"
    r"|(^|\.)(move|move_q|move_k|move_v)\.bias$"
)
#: reference sublayer of ``encoder.layer.N`` -> our sublayer of ``encoder.layers.N``
LINEAR_SITES = {ref: ours for ref, (ours, is_linear) in HF_LAYER_NAMES.items() if is_linear}
#: reference attention scale -> our attention quantizer
ATTENTION_SITES = {
    "clip_query": "query_quantizer",
    "clip_key": "key_quantizer",
    "clip_value": "value_quantizer",
    "clip_attn": "prob_quantizer",
}
ELASTIC_EPS = 1e-5  # the reference's lower bound of an elastic alpha
_FLAGS = (
    "weight_bits",
    "input_bits",
    "weight_quant_method",
    "input_quant_method",
    "sym_quant_qkvo",
    "sym_quant_ffn_attn",
    "weight_layerwise",
    "embed_layerwise",
    "input_layerwise",
    "not_quantize_attention",
)
# the releases' command-line defaults (quant_task_distill_glue.py); BinaryBERT's bit widths and methods have none
_SHARED_DEFAULTS = dict(
    sym_quant_qkvo=True,
    sym_quant_ffn_attn=False,
    weight_layerwise=True,
    embed_layerwise=False,
    input_layerwise=True,
    not_quantize_attention=False,
)
_DEFAULTS = {
    "bit": dict(_SHARED_DEFAULTS, weight_bits=1, input_bits=1, weight_quant_method="bwn", input_quant_method="elastic"),
    "binarybert": dict(_SHARED_DEFAULTS),
}


class ReferenceQuantError(ValueError):
    """A reference quantized checkpoint cannot be mapped exactly (the message lists keys and reasons)."""


def is_reference_quant_state(keys: Iterable[str]) -> bool:
    """Whether a (Hugging Face-named) state dict holds BiT / BinaryBERT quantizer tensors."""
    return any(_QUANT_KEY_RE.search(k) for k in keys)


@dataclass
class ReferenceRecipe:
    """The quantization flags of a reference checkpoint (see the module docstring)."""

    family: str  # "bit" (elastic, move biases) or "binarybert"
    weight_bits: int
    input_bits: int
    weight_quant_method: str
    input_quant_method: str
    sym_quant_qkvo: bool
    sym_quant_ffn_attn: bool
    weight_layerwise: bool
    embed_layerwise: bool
    input_layerwise: bool
    not_quantize_attention: bool
    hidden_act: str

    def quant_config(self):
        """Our :class:`~paddle_binbert.quant.QuantConfig` for this recipe (a preset's name when it is one).

        Raises :class:`ReferenceQuantError` when no QuantConfig has these quantizers.
        """
        weights = {("bit", "bwn", 1): "bwn_centered", ("binarybert", "bwn", 1): "bwn", ("binarybert", "twn", 2): "twn"}
        wq = weights.get((self.family, self.weight_quant_method, self.weight_bits))
        acts = {("elastic", 1): "elastic", ("lsq", 2): "lsq", ("lsq", 4): "lsq", ("lsq", 8): "lsq"}
        acts.update({("uniform", b): "uniform_clip" for b in (2, 4, 8)})
        aq = acts.get((self.input_quant_method, self.input_bits))
        problems = []
        if wq is None:
            problems.append(
                f"weight_quant_method={self.weight_quant_method!r} with weight_bits={self.weight_bits} "
                f"({self.family}) has no paddle_binbert weight quantizer (supported: BiT bwn 1-bit, BinaryBERT "
                "bwn 1-bit / twn 2-bit)"
            )
        if aq is None:
            problems.append(
                f"input_quant_method={self.input_quant_method!r} with input_bits={self.input_bits} has no "
                "paddle_binbert activation quantizer (supported: elastic 1-bit, lsq / uniform 2, 4, 8-bit)"
            )
        if not self.input_layerwise:
            problems.append("input_layerwise=False (per-row activation scales) has no paddle_binbert counterpart")
        if self.not_quantize_attention:
            problems.append("not_quantize_attention=True (full-precision attention) has no paddle_binbert counterpart")
        if problems:
            raise ReferenceQuantError("cannot map this reference quantized model: " + "; ".join(problems))
        fields = dict(
            weight_bits=self.weight_bits,
            embedding_bits=self.weight_bits,
            activation_bits=self.input_bits,
            weight_quantizer=wq,
            embedding_quantizer=wq,
            activation_quantizer=aq,
            attention="bit" if aq == "elastic" else "quant",
            hidden_act=self.hidden_act,
        )
        name = f"{self.family}_reference"
        for preset in available_presets():
            p = QuantConfig.from_preset(preset).to_dict()
            if all(p[k] == v for k, v in fields.items() if k != "hidden_act"):
                name = preset
                break
        return QuantConfig(name=name, **fields)


def _flag(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, None)
    if value is None and isinstance(config, dict):
        value = config.get(name)
    return default if value is None else value


def reference_recipe(keys: Iterable[str], config: Any) -> ReferenceRecipe:
    """The recipe of a reference checkpoint: its config's flags, else the release's defaults.

    BiT is recognised by the ``move.bias`` tensors of its linears. BinaryBERT's bit widths and
    methods have no default (they are command-line choices): without them in the config, a
    :class:`ReferenceQuantError` names the missing flags.
    """
    keys = list(keys)
    family = "bit" if any(re.search(r"(^|\.)move\.bias$", k) for k in keys) else "binarybert"
    defaults = _DEFAULTS[family]
    values = {name: _flag(config, name, defaults.get(name)) for name in _FLAGS}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ReferenceQuantError(
            f"this looks like a BinaryBERT quantized checkpoint, but its config lacks {missing}: add them to "
            "config.json (as the reference training script sets them, e.g. weight_bits=1, weight_quant_method='bwn', "
            "input_bits=4, input_quant_method='lsq') or pass config= with them"
        )
    hidden_act = str(_flag(config, "hidden_act", "relu" if family == "bit" else "gelu"))
    return ReferenceRecipe(
        family=family,
        weight_bits=int(values["weight_bits"]),
        input_bits=int(values["input_bits"]),
        weight_quant_method=str(values["weight_quant_method"]),
        input_quant_method=str(values["input_quant_method"]),
        sym_quant_qkvo=bool(values["sym_quant_qkvo"]),
        sym_quant_ffn_attn=bool(values["sym_quant_ffn_attn"]),
        weight_layerwise=bool(values["weight_layerwise"]),
        embed_layerwise=bool(values["embed_layerwise"]),
        input_layerwise=bool(values["input_layerwise"]),
        not_quantize_attention=bool(values["not_quantize_attention"]),
        hidden_act=hidden_act,
    )


# ------------------------------------------------------------------------------ weights


def _sgn(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.float32(1), np.float32(-1))


def reference_weight_quant(w: np.ndarray, method: str, layerwise: bool, centred: bool) -> np.ndarray:
    """The reference BWN / TWN quantizer in numpy, on a torch-layout matrix (rows: output channels
    of a Linear, tokens of an embedding). ``centred``: BiT's BWN, which subtracts the mean of the
    whole matrix before taking signs whatever ``layerwise`` is."""
    w = np.asarray(w, dtype=np.float32)
    if method == "bwn":
        scale = np.abs(w).mean() if layerwise else np.abs(w).mean(axis=1, keepdims=True)
        return (_sgn(w - w.mean()) if centred else _sgn(w)) * np.float32(scale)
    delta = 0.7 * (np.abs(w).mean() if layerwise else np.abs(w).mean(axis=1, keepdims=True))
    keep = (np.abs(w) > delta).astype(np.float32)
    if layerwise:
        alpha = (np.abs(w) * keep).sum() / max(keep.sum(), 1.0)
    else:
        alpha = (np.abs(w) * keep).sum(axis=1, keepdims=True) / np.maximum(keep.sum(axis=1, keepdims=True), 1.0)
    return np.float32(alpha) * _sgn(w) * keep


def _ours_quantize(quantizer, w: np.ndarray, embedding: bool) -> np.ndarray:
    import paddle

    with paddle.no_grad():
        t = paddle.to_tensor(w[None] if embedding else w)
        return quantizer(t).numpy().reshape(w.shape)


# ------------------------------------------------------------------------------ activation sites


@dataclass
class _Site:
    ours: str  # our quantizer's path (without the ``bert.`` prefix)
    quantizer: Any
    clip_key: str  # reference key of the scale
    move_key: Optional[str]  # reference key of BiT's shift (None: no shift at this site)
    symmetric: bool
    nonnegative: bool  # its input is >= 0 (probabilities, post-ReLU FFN2 input)


def _sites(model, recipe: ReferenceRecipe, ref_prefix: str) -> List[_Site]:
    bert = get_bert(model)
    relu = recipe.hidden_act == "relu"
    sites: List[_Site] = []
    for i, layer in enumerate(bert.encoder.layers):
        for ref_sub, ours in LINEAR_SITES.items():
            sub = layer
            for part in ours.split("."):
                sub = getattr(sub, part)
            ffn2 = ours == "linear2"
            ref = f"{ref_prefix}encoder.layer.{i}.{ref_sub}"
            sites.append(
                _Site(
                    ours=f"encoder.layers.{i}.{ours}.input_quantizer",
                    quantizer=sub.input_quantizer,
                    clip_key=f"{ref}.input_clip_val",
                    move_key=f"{ref}.move.bias" if recipe.family == "bit" else None,
                    symmetric=recipe.sym_quant_ffn_attn if ffn2 else recipe.sym_quant_qkvo,
                    nonnegative=ffn2 and relu,
                )
            )
        for ref_name, ours in ATTENTION_SITES.items():
            prob = ours == "prob_quantizer"
            sites.append(
                _Site(
                    ours=f"encoder.layers.{i}.self_attn.{ours}",
                    quantizer=getattr(layer.self_attn, ours),
                    clip_key=f"{ref_prefix}encoder.layer.{i}.attention.self.{ref_name}",
                    move_key=None,
                    symmetric=recipe.sym_quant_ffn_attn if prob else recipe.sym_quant_qkvo,
                    nonnegative=prob,
                )
            )
    if getattr(bert.pooler.dense, "input_quantizer", None) is not None:
        ref = f"{ref_prefix}pooler.dense"
        sites.append(
            _Site(
                ours="pooler.dense.input_quantizer",
                quantizer=bert.pooler.dense.input_quantizer,
                clip_key=f"{ref}.input_clip_val",
                move_key=f"{ref}.move.bias" if recipe.family == "bit" else None,
                symmetric=recipe.sym_quant_qkvo,
                nonnegative=False,
            )
        )
    return sites


def _describe_ours(q) -> str:
    signed = getattr(q, "signed", None)
    kind = type(q).__name__
    return f"{kind}({'signed' if signed else 'unsigned'})" if signed is not None else kind


def _map_site(
    site: _Site, state: StateDict, recipe: ReferenceRecipe, allow_approximate: bool
) -> Tuple[Dict[str, np.ndarray], Optional[str], Optional[str]]:
    """(our tensors, problem, approximation note) for one activation quantizer."""
    q = site.quantizer
    clip = state.get(site.clip_key)
    if clip is None:
        return {}, f"missing {site.clip_key} (scale of {site.ours})", None
    clip = np.asarray(clip, dtype=np.float32).reshape(-1)
    method = recipe.input_quant_method
    ref_kind = f"{'symmetric' if site.symmetric else 'asymmetric'} {method} ({recipe.input_bits}-bit)"
    one = np.ones([1], np.float32)
    out: Dict[str, np.ndarray] = {}
    mismatch = f"{site.clip_key}: the reference uses a {ref_kind} quantizer, ours is {_describe_ours(q)}"
    if method == "elastic" and isinstance(q, ElasticQuantizer):
        if q.signed != site.symmetric:
            return {}, mismatch, None
        if clip.size != 1:
            return {}, f"{site.clip_key}: expected one elastic scale, found shape {list(clip.shape)}", None
        out[f"{site.ours}.alpha"] = np.maximum(clip, np.float32(ELASTIC_EPS)).reshape([1])
        channels = int(q.beta.shape[0])
        if site.move_key is not None:
            move = state.get(site.move_key)
            if move is None:
                return {}, f"missing {site.move_key} (shift of {site.ours})", None
            out[f"{site.ours}.beta"] = -np.asarray(move, dtype=np.float32)
        else:
            out[f"{site.ours}.beta"] = np.zeros([channels], np.float32)
        out[f"{site.ours}.initialized"] = one
        return out, None, None
    if method == "lsq" and isinstance(q, LsqQuantizer) and q.bits == recipe.input_bits:
        if clip.size != 1:
            return {}, f"{site.clip_key}: expected one LSQ step, found shape {list(clip.shape)}", None
        note = None
        if not (site.symmetric and q.signed):  # asymmetric LSQ (minus the minimum) is never exactly ours
            approximable = not site.symmetric and not q.signed and site.nonnegative
            if not (approximable and allow_approximate):
                why = mismatch
                if approximable:
                    why += (
                        " (the reference subtracts the tensor's minimum first: equal to ours only when that minimum "
                        "is 0; pass allow_approximate=True to accept)"
                    )
                return {}, why, None
            note = site.clip_key
        out[f"{site.ours}.step"] = clip.reshape([1])
        out[f"{site.ours}.initialized"] = one
        return out, None, note
    if method == "uniform" and isinstance(q, UniformClipQuantizer) and q.bits == recipe.input_bits:
        if not site.symmetric:
            return {}, mismatch + " (min-max range, no counterpart)", None
        if clip.size != 2 or clip[0] != -clip[1]:
            return {}, f"{site.clip_key}: clip range {clip.tolist()} is not symmetric [-c, c] as ours is", None
        out[f"{site.ours}.clip_val"] = clip[1:].copy()
        return out, None, None
    return {}, mismatch, None


# ------------------------------------------------------------------------------ conversion


def convert_reference_state(
    state: StateDict, model, recipe: ReferenceRecipe, task: str, allow_approximate: bool = False
) -> StateDict:
    """Rename a reference quantized state dict to ``model``'s names (``model`` built with
    ``recipe.quant_config()``): weights and FP islands as for Hugging Face BERT, quantizer scales
    and shifts mapped per site. Raises :class:`ReferenceQuantError` listing every key that cannot
    be mapped exactly, with the reason."""
    state = {strip_wrappers(k): v for k, v in state.items()}
    ref_prefix = "bert." if any(k.startswith("bert.") for k in state) else ""
    plain = {k: v for k, v in state.items() if not _QUANT_KEY_RE.search(k)}
    quant_keys = set(state) - set(plain)
    out = hf_to_paddle_state_dict(plain, task)
    ours_prefix = ref_prefix
    problems: List[str] = []
    approximated: List[str] = []
    used: set = set()
    for site in _sites(model, recipe, ref_prefix):
        tensors, problem, note = _map_site(site, state, recipe, allow_approximate)
        used.update(k for k in (site.clip_key, site.move_key) if k)
        if problem:
            problems.append(problem)
            continue
        if note:
            approximated.append(note)
        out.update({ours_prefix + k: v for k, v in tensors.items()})

    # weights: exact when the schemes agree, else the reference's quantized values if ours reproduces them
    bert = get_bert(model)
    centred = recipe.family == "bit"
    folded: List[str] = []
    for name, layer in bert.named_sublayers():
        if isinstance(layer, QuantEmbedding):
            embedding, layerwise, axis_ok = True, recipe.embed_layerwise, (not recipe.embed_layerwise and not centred)
        elif isinstance(layer, QuantLinear):
            embedding, layerwise = False, recipe.weight_layerwise
            axis_ok = layerwise and getattr(layer.weight_quantizer, "axis", 0) is None
        else:
            continue
        if layer.weight_quantizer is None:
            continue
        key = ours_prefix + name + ".weight"
        if key not in out:
            continue  # reported as missing by the strict load
        if axis_ok:
            continue
        ours_w = np.asarray(out[key], dtype=np.float32)
        torch_layout = ours_w if embedding else ours_w.T
        ref_q = reference_weight_quant(torch_layout, recipe.weight_quant_method, layerwise, centred)
        folded_w = np.ascontiguousarray(ref_q if embedding else ref_q.T)
        again = _ours_quantize(layer.weight_quantizer, folded_w, embedding)
        if not np.allclose(again, folded_w, rtol=1e-5, atol=0.0):
            bad = ""
            if embedding:
                rows = np.where(~np.isclose(again, folded_w, rtol=1e-5, atol=0.0).all(axis=1))[0]
                bad = f" (rows {rows[:10].tolist()}{' ...' if rows.size > 10 else ''})"
            scheme = "one scale per matrix" if layerwise else "one scale per row"
            problems.append(
                f"{_ref_name(name, ref_prefix)}.weight: the reference {recipe.weight_quant_method} quantizer "
                f"({scheme}{', centred on the matrix mean' if centred else ''}) gives values that "
                f"{type(layer.weight_quantizer).__name__}(axis={layer.weight_quantizer.axis}) cannot reproduce{bad}"
            )
            continue
        out[key] = folded_w
        folded.append(_ref_name(name, ref_prefix) + ".weight")

    ignored = sorted(k for k in quant_keys - used if re.search(r"(^|\.)move_[qkv]\.bias$", k))
    for key in sorted(quant_keys - used - set(ignored)):
        if key.endswith(("weight_clip_val", "embed_clip_val")):
            problems.append(f"{key}: learnable weight quantizers ({recipe.weight_quant_method}) have no counterpart")
        else:
            problems.append(f"unexpected {key}")
    if problems:
        raise ReferenceQuantError(
            f"{len(problems)} tensor(s) of this {recipe.family} checkpoint cannot be mapped exactly: "
            + "; ".join(problems[:20])
            + (" ..." if len(problems) > 20 else "")
        )
    if folded:
        logger.info(
            "loaded the binarized values of %s (the reference quantizer centres / scales them differently; "
            "the forward pass is the reference's, the latent FP weights are not kept)",
            ", ".join(folded),
        )
    if ignored:
        logger.info("ignoring %s: the reference forward pass does not use them", ", ".join(ignored[:6]))
    if approximated:
        logger.warning(
            "allow_approximate: asymmetric LSQ (minus the tensor minimum) of %s mapped to unsigned LSQ; exact only "
            "when that minimum is 0",
            ", ".join(approximated[:6]) + (" ..." if len(approximated) > 6 else ""),
        )
    return out


def _ref_name(ours: str, prefix: str) -> str:
    """Reference (Hugging Face) name of one of our sublayers, for messages."""
    m = re.match(r"encoder\.layers\.(\d+)\.(.+)$", ours)
    if m:
        back = {v: k for k, v in LINEAR_SITES.items()}
        return f"{prefix}encoder.layer.{m.group(1)}.{back.get(m.group(2), m.group(2))}"
    return prefix + ours
