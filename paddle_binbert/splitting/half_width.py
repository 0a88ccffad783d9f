"""BinaryBERT's half-width ternary start (Bai et al., ACL 2021, Sec. 3 / 4.1; specs/splitting.md).

BinaryBERT trains a *half-sized* ternary BERT (half of the attention heads and half of the FFN
neurons of every layer; the release starts from DynaBERT at width 0.5) and splits it with TWS
into a binary model whose binary weight count is that of the full-width model.  This module
provides both steps around :mod:`.tws`:

* :func:`halve_model` keeps, in every layer, the most important ``keep_ratio`` of the heads and of
  the FFN neurons and slices the weights (q/k/v columns, attention-output rows, FFN1 columns, FFN2
  rows, biases, and per-channel activation-quantizer parameters of the sliced inputs);
* :func:`widen_by_split` is the TWS of the half-width ternary model (:func:`split_ternary_model`).

Importance (choose with ``importance=``)
----------------------------------------
``"taylor"`` -- first-order Taylor / gate sensitivity (Michel, Levy & Neubig, NeurIPS 2019, "Are
Sixteen Heads Really Better than One?", Eq. 2; Molchanov et al., ICLR 2017 for neurons).  A gate
xi = 1 multiplies each head's context vector (the input channels of the attention-output
projection that belong to the head) and each FFN neuron's activation (an input channel of FFN2):

    I_head(l, h) = E_x | sum_t sum_{c in head h} a_c(x, t) * dL(x)/da_c(x, t) |  = E_x |dL(x)/dxi_h|
    I_neuron(l, j) = E_x | sum_t a_j(x, t) * dL(x)/da_j(x, t) |

with a = the gated activation, L(x) the task loss of example x (cross entropy, MSE for one
output, start + end cross entropy for QA; or ``loss_fn``) and E_x the mean over the examples of
``batches`` (per-example gradients, exact because the losses are summed, not averaged).
``"magnitude"`` -- data-free fallback, squared L2 norm of the weights a unit owns:

    I_head(l, h) = ||Wq[:, h]||^2 + ||Wk[:, h]||^2 + ||Wv[:, h]||^2 + ||Wo[h, :]||^2
    I_neuron(l, j) = ||W1[:, j]||^2 + ||W2[j, :]||^2

(``[:, h]`` = the head's ``head_dim`` columns; latent weights of quantized layers).  The default
``importance=None`` is ``"taylor"`` when ``batches`` are given, else ``"magnitude"``.  Units are
ranked per layer (ties: lower index first) and the kept ones stay in their original order.

Width per layer
---------------
PaddleNLP's ``BertConfig`` has one ``num_attention_heads`` and one ``intermediate_size``, so every
layer keeps the same number of heads and neurons (``round(keep_ratio * n)``); which ones are kept
is decided per layer.  The modules themselves would run with per-layer counts, but such a model
could not be described by a ``BertConfig``.  Heads keep their ``head_dim``: a halved layer's q/k/v
project ``hidden -> kept_heads * head_dim``, which ``BertConfig`` cannot express either (it derives
``head_dim = hidden_size / num_attention_heads``), hence the record
``config.binbert_half_width = {"attention_head_size": d, ...}`` and :func:`apply_half_width_layout`
that rebuilds the projections of a freshly constructed model before its state dict is loaded.

In the pipeline
---------------
``task_distill.py --method binarybert --half_width`` (GLUE and SQuAD) halves the FP student before
the ternary stages (Taylor importance on the first ``--half_width_batches`` training batches, or
``--half_width_importance magnitude``) and widens it with :func:`widen_by_split` in the split
stage.  Distillation from the full teacher compares hidden states as usual and attention scores
with the teacher's kept heads (:func:`teacher_heads_for`); ``load_model`` replays
:func:`apply_half_width_layout` before the quantized / split layouts.

What "doubling the width" means
-------------------------------
specs/splitting.md: each ternary linear W becomes two binary linears W1, W2 with outputs summed,
"equivalently one binary linear with doubled input width over [x, x]".  The width that doubles is
the number of binary weights (and of binary input channels, ``[x, x] @ [W1; W2]``): a half-width
ternary q/k/v ``[hidden, hidden/2]`` becomes ``2 x [hidden, hidden/2]`` binary = the binary
weights of a full ``[hidden, hidden]`` matrix, likewise FFN ``2 x [hidden, I/2]``.  The split
does NOT duplicate neurons or heads: a neuron duplicated into halves computing x.bwn(W1) and
x.bwn(W2) would be followed by GELU(u) + GELU(v) != GELU(u + v), and a head split into two
would give q1.k1 + q2.k2 != (q1 + q2).(k1 + k2), so no duplicated-unit layout of a standard
BERT is function-preserving; the summed-pair layout is, exactly.  The word embedding is not
halved and is split row-wise like every ternary matrix, which is why BinaryBERT's 1-1-x models
(16.5 MB) are larger than a plain 1-1-1 BERT (13.4 MB).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from ..models.attention import QuantMultiHeadAttention
from ..models.quantize import get_bert, quant_config_of
from ..quant.layers import QuantLinear
from .tws import SplitQuantEmbedding, SplitQuantLinear, split_layers_of, split_ternary_model

__all__ = [
    "HALF_WIDTH_CONFIG_KEY",
    "WidthPlan",
    "apply_half_width_layout",
    "default_loss",
    "half_width_info",
    "halve_model",
    "magnitude_importance",
    "plan_width",
    "prune_width",
    "select_units",
    "taylor_importance",
    "teacher_heads_for",
    "widen_by_split",
]

HALF_WIDTH_CONFIG_KEY = "binbert_half_width"

LossFn = Callable[[nn.Layer, Dict[str, Any]], paddle.Tensor]
ImportanceLike = Union[None, str, Tuple[np.ndarray, np.ndarray]]


@dataclass
class WidthPlan:
    """Which heads / FFN neurons every layer keeps, and the importance scores behind the choice.

    Attributes:
        heads: per layer, the kept head indices (ascending).
        neurons: per layer, the kept FFN neuron indices (ascending).
        head_importance: ``[layers, heads]`` scores.
        neuron_importance: ``[layers, intermediate]`` scores.
        method: ``"taylor"``, ``"magnitude"`` or ``"given"``.
    """

    heads: List[List[int]]
    neurons: List[List[int]]
    head_importance: np.ndarray
    neuron_importance: np.ndarray
    method: str

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form (kept units, scores, method); :meth:`from_dict` reads it back."""
        return {
            "method": self.method,
            "heads": [list(map(int, h)) for h in self.heads],
            "neurons": [list(map(int, n)) for n in self.neurons],
            "head_importance": np.asarray(self.head_importance, dtype=np.float64).tolist(),
            "neuron_importance": np.asarray(self.neuron_importance, dtype=np.float64).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> WidthPlan:
        """The plan written by :meth:`to_dict`."""
        return cls(
            heads=[list(map(int, h)) for h in data["heads"]],
            neurons=[list(map(int, n)) for n in data["neurons"]],
            head_importance=np.asarray(data["head_importance"], dtype=np.float64),
            neuron_importance=np.asarray(data["neuron_importance"], dtype=np.float64),
            method=str(data["method"]),
        )


# --------------------------------------------------------------------------------------------
# Importance
# --------------------------------------------------------------------------------------------


def _layers(model: nn.Layer) -> List[nn.Layer]:
    bert = get_bert(model)
    if split_layers_of(model) or any(isinstance(m, (SplitQuantLinear, SplitQuantEmbedding)) for m in bert.sublayers()):
        raise ValueError("the model is already split (TWS); halve the ternary model before widen_by_split")
    return list(bert.encoder.layers)


def _head_shape(attn: nn.Layer) -> Tuple[int, int]:
    return int(attn.num_heads), int(attn.head_dim)


def magnitude_importance(model: nn.Layer) -> Tuple[np.ndarray, np.ndarray]:
    """Data-free importance: squared L2 norm of the weights each head / neuron owns.

    ``I_head(l, h) = ||Wq[:, h]||^2 + ||Wk[:, h]||^2 + ||Wv[:, h]||^2 + ||Wo[h, :]||^2`` and
    ``I_neuron(l, j) = ||W1[:, j]||^2 + ||W2[j, :]||^2`` (Paddle ``[in, out]`` layout; latent
    weights for quantized layers).  Returns ``([layers, heads], [layers, intermediate])``.
    """
    heads, neurons = [], []
    for layer in _layers(model):
        attn = layer.self_attn
        nh, d = _head_shape(attn)
        sq = lambda w: w.detach().numpy().astype(np.float64) ** 2  # noqa: E731
        cols = sum(sq(p.weight).sum(axis=0) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        rows = sq(attn.out_proj.weight).sum(axis=1)
        heads.append((cols + rows).reshape(nh, d).sum(axis=1))
        neurons.append(sq(layer.linear1.weight).sum(axis=0) + sq(layer.linear2.weight).sum(axis=1))
    return np.stack(heads), np.stack(neurons)


def default_loss(model: nn.Layer, batch: Dict[str, Any]) -> paddle.Tensor:
    """Task loss summed over the examples of ``batch`` (so per-example gradients stay exact).

    Sequence classification: ``sum CE(logits, labels)`` (``sum (logit - label)^2`` for one output);
    question answering: ``sum CE(start) + CE(end)``.  ``batch`` holds the model inputs plus
    ``labels`` or ``start_positions`` / ``end_positions``.
    """
    inputs = dict(batch)
    if isinstance(model, BertForSequenceClassification):
        if "labels" not in inputs:
            raise ValueError("Taylor importance needs 'labels' in every batch (or pass loss_fn=)")
        labels = inputs.pop("labels")
        logits = model(**inputs, return_dict=False)
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        if logits.shape[-1] == 1:
            return ((logits.reshape([-1]) - labels.astype(logits.dtype).reshape([-1])) ** 2).sum()
        return F.cross_entropy(logits, labels.reshape([-1, 1]).astype("int64"), reduction="sum")
    if isinstance(model, BertForQuestionAnswering):
        if "start_positions" not in inputs or "end_positions" not in inputs:
            raise ValueError("Taylor importance needs 'start_positions' / 'end_positions' (or pass loss_fn=)")
        start, end = inputs.pop("start_positions"), inputs.pop("end_positions")
        out = model(**inputs, return_dict=False)
        return sum(
            F.cross_entropy(logits, pos.reshape([-1, 1]).astype("int64"), reduction="sum")
            for logits, pos in zip(out[:2], (start, end))
        )
    raise ValueError(f"no default task loss for {type(model).__name__}: pass loss_fn=(model, batch) -> loss")


def taylor_importance(
    model: nn.Layer, batches: Iterable[Dict[str, Any]], loss_fn: Optional[LossFn] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """First-order Taylor importance of heads and FFN neurons (Michel et al., NeurIPS 2019).

    ``I_head(l, h) = E_x |sum_t sum_{c in h} a_c dL(x)/da_c|`` over the context channels of head h
    (inputs of the attention-output projection) and ``I_neuron(l, j) = E_x |sum_t a_j dL(x)/da_j|``
    over FFN2's input channel j, with per-example gates (module docstring).  Runs in eval mode
    (no dropout) without touching parameter gradients.  Returns ``([layers, heads], [layers, I])``.
    """
    loss_fn = loss_fn or default_loss
    layers = _layers(model)
    shapes = [_head_shape(layer.self_attn) for layer in layers]
    head_sum = [np.zeros(nh, dtype=np.float64) for nh, _ in shapes]
    neuron_sum = [np.zeros(layer.linear2.weight.shape[0], dtype=np.float64) for layer in layers]
    gates: Dict[Tuple[int, str], paddle.Tensor] = {}

    def make_hook(i: int, kind: str) -> Callable:
        def hook(layer: nn.Layer, inputs: Tuple[paddle.Tensor, ...]) -> Tuple[paddle.Tensor, ...]:
            x = inputs[0]
            gate = paddle.ones([x.shape[0], 1, x.shape[-1]], dtype=x.dtype)
            gate.stop_gradient = False
            gates[(i, kind)] = gate
            return (x * gate,) + tuple(inputs[1:])

        return hook

    was_training = model.training
    frozen = [(p, p.stop_gradient) for p in model.parameters()]
    handles = []
    try:
        model.eval()
        for p, _ in frozen:
            p.stop_gradient = True
        for i, layer in enumerate(layers):
            handles.append(layer.self_attn.out_proj.register_forward_pre_hook(make_hook(i, "head")))
            handles.append(layer.linear2.register_forward_pre_hook(make_hook(i, "neuron")))
        count = 0
        for batch in batches:
            gates.clear()
            loss = loss_fn(model, batch)
            loss.backward()
            n = None
            for i, (nh, d) in enumerate(shapes):
                g_head = gates[(i, "head")].grad.numpy().astype(np.float64)  # [B, 1, nh * d]
                g_neuron = gates[(i, "neuron")].grad.numpy().astype(np.float64)  # [B, 1, I]
                n = g_head.shape[0]
                head_sum[i] += np.abs(g_head.reshape(n, nh, d).sum(axis=2)).sum(axis=0)
                neuron_sum[i] += np.abs(g_neuron.reshape(n, -1)).sum(axis=0)
            count += n or 0
        if count == 0:
            raise ValueError("taylor_importance needs at least one batch")
    finally:
        for h in handles:
            h.remove()
        for p, flag in frozen:
            p.stop_gradient = flag
        model.train() if was_training else model.eval()
    return np.stack(head_sum) / count, np.stack(neuron_sum) / count


def select_units(importance: np.ndarray, keep: int) -> List[List[int]]:
    """Per row of ``importance`` ([layers, units]), the ``keep`` highest-scoring indices, ascending.

    Ties are broken towards the lower index.
    """
    importance = np.asarray(importance, dtype=np.float64)
    if not 1 <= keep <= importance.shape[1]:
        raise ValueError(f"keep must be in 1..{importance.shape[1]}, got {keep}")
    out = []
    for row in importance:
        order = np.lexsort((np.arange(len(row)), -row))  # by score desc, then index asc
        out.append(sorted(int(i) for i in order[:keep]))
    return out


def plan_width(
    model: nn.Layer,
    keep_ratio: float = 0.5,
    importance: ImportanceLike = None,
    batches: Optional[Iterable[Dict[str, Any]]] = None,
    loss_fn: Optional[LossFn] = None,
) -> WidthPlan:
    """Score heads and neurons (``importance``: None / ``"taylor"`` / ``"magnitude"`` / a pair of
    arrays) and keep ``round(keep_ratio * n)`` of each per layer (:func:`select_units`)."""
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    if importance is None:
        importance = "taylor" if batches is not None else "magnitude"
    if isinstance(importance, str):
        if importance == "taylor":
            if batches is None:
                raise ValueError("importance='taylor' needs batches= (a few batches of labelled inputs)")
            head_imp, neuron_imp = taylor_importance(model, batches, loss_fn)
        elif importance == "magnitude":
            head_imp, neuron_imp = magnitude_importance(model)
        else:
            raise ValueError(f"unknown importance {importance!r}; valid: 'taylor', 'magnitude' or (heads, neurons)")
        method = importance
    else:
        head_imp, neuron_imp = (np.asarray(a, dtype=np.float64) for a in importance)
        method = "given"
    layers = _layers(model)
    nh, inter = _head_shape(layers[0].self_attn)[0], layers[0].linear2.weight.shape[0]
    if head_imp.shape != (len(layers), nh) or neuron_imp.shape != (len(layers), inter):
        raise ValueError(
            f"importance shapes {head_imp.shape}, {neuron_imp.shape} do not match the model "
            f"({len(layers)}, {nh}) and ({len(layers)}, {inter})"
        )
    keep_heads = max(1, int(round(keep_ratio * nh)))
    keep_neurons = max(1, int(round(keep_ratio * inter)))
    return WidthPlan(
        select_units(head_imp, keep_heads), select_units(neuron_imp, keep_neurons), head_imp, neuron_imp, method
    )


# --------------------------------------------------------------------------------------------
# Slicing
# --------------------------------------------------------------------------------------------


def _slice_quantizer(quantizer: Optional[nn.Layer], index: np.ndarray, old: int) -> None:
    """Slice every per-channel parameter (shape ``[old]``) of an activation quantizer, in place."""
    if quantizer is None:
        return
    for name, param in list(quantizer._parameters.items()):
        if param is not None and list(param.shape) == [old] and old > 1:
            new = quantizer.create_parameter([len(index)], dtype=param.dtype)
            new.set_value(paddle.to_tensor(param.numpy()[index]))
            new.stop_gradient = param.stop_gradient
            quantizer._parameters[name] = new
    if getattr(quantizer, "num_channels", None) == old:
        quantizer.num_channels = len(index)


def _slice_linear(layer: nn.Layer, rows: Optional[np.ndarray] = None, cols: Optional[np.ndarray] = None) -> nn.Layer:
    """A copy of an ``nn.Linear`` / ``QuantLinear`` keeping input channels ``rows`` and outputs ``cols``."""
    w = layer.weight.detach().numpy()
    b = None if layer.bias is None else layer.bias.detach().numpy()
    if rows is not None:
        w = w[rows]
    if cols is not None:
        w = w[:, cols]
        b = None if b is None else b[cols]
    fan_in, fan_out = w.shape
    if isinstance(layer, QuantLinear):
        if rows is not None:
            _slice_quantizer(layer.input_quantizer, rows, layer.in_features)
        new = QuantLinear(fan_in, fan_out, layer.weight_quantizer, layer.input_quantizer, bias=b is not None)
    elif isinstance(layer, nn.Linear):
        new = nn.Linear(fan_in, fan_out, bias_attr=None if b is not None else False)
    else:
        raise TypeError(f"cannot slice {type(layer).__name__} (expected nn.Linear or QuantLinear)")
    new.weight.set_value(paddle.to_tensor(w))
    if b is not None:
        new.bias.set_value(paddle.to_tensor(b))
    return new


def _head_channels(heads: Sequence[int], head_dim: int) -> np.ndarray:
    return np.concatenate([np.arange(h * head_dim, (h + 1) * head_dim) for h in heads]).astype(np.int64)


def prune_width(model: nn.Layer, plan: WidthPlan) -> nn.Layer:
    """Keep the heads / neurons of ``plan`` in every layer (in place); updates the config.

    ``num_attention_heads`` and ``intermediate_size`` become the kept counts (uniform over layers,
    see the module docstring), ``config.binbert_half_width`` records the head size and the kept
    heads.  FP and quantized models (``quantize_model``) are supported, split ones are not.
    """
    layers = _layers(model)
    if half_width_info(model) is not None:
        raise ValueError("the model is already half-width (config.binbert_half_width): halve a full-width model")
    if len(plan.heads) != len(layers) or len(plan.neurons) != len(layers):
        raise ValueError(f"plan has {len(plan.heads)} layers, the model {len(layers)}")
    if len({len(h) for h in plan.heads}) != 1 or len({len(n) for n in plan.neurons}) != 1:
        raise ValueError("BertConfig needs the same number of heads / neurons in every layer")
    source_heads, head_dim = _head_shape(layers[0].self_attn)
    source_inter = int(layers[0].linear2.weight.shape[0])
    for layer, heads, neurons in zip(layers, plan.heads, plan.neurons):
        attn = layer.self_attn
        nh, d = _head_shape(attn)
        channels = _head_channels(heads, d)
        old = nh * d
        attn.q_proj = _slice_linear(attn.q_proj, cols=channels)
        attn.k_proj = _slice_linear(attn.k_proj, cols=channels)
        attn.v_proj = _slice_linear(attn.v_proj, cols=channels)
        attn.out_proj = _slice_linear(attn.out_proj, rows=channels)
        attn.num_heads = len(heads)
        # QuantMultiHeadAttention reshapes the context to `embed_dim` channels and copies the
        # attribute from the FP layer in quantize_model; nn.MultiHeadAttention only reads it in
        # __init__.  Both therefore get the context width.
        attn.embed_dim = len(heads) * d
        if isinstance(attn, QuantMultiHeadAttention):
            for q in (attn.query_quantizer, attn.key_quantizer, attn.value_quantizer):
                _slice_quantizer(q, channels, old)
        idx = np.asarray(neurons, dtype=np.int64)
        layer.linear1 = _slice_linear(layer.linear1, cols=idx)
        layer.linear2 = _slice_linear(layer.linear2, rows=idx)

    bert = get_bert(model)
    config = copy.deepcopy(model.config)
    model.config = config
    bert.config = config
    config.num_attention_heads = len(plan.heads[0])
    config.intermediate_size = len(plan.neurons[0])
    setattr(
        config,
        HALF_WIDTH_CONFIG_KEY,
        {
            "attention_head_size": int(head_dim),
            "source_num_attention_heads": int(source_heads),
            "source_intermediate_size": int(source_inter),
            "heads": [list(map(int, h)) for h in plan.heads],
            "importance": plan.method,
        },
    )
    return model


def halve_model(
    model: nn.Layer,
    importance: ImportanceLike = None,
    batches: Optional[Iterable[Dict[str, Any]]] = None,
    loss_fn: Optional[LossFn] = None,
    keep_ratio: float = 0.5,
) -> nn.Layer:
    """BinaryBERT's half-width model: keep the most important half of the heads and FFN neurons.

    Importance per head / neuron (module docstring): first-order Taylor
    ``E_x |sum a * dL/da|`` (Michel et al. 2019) from ``batches`` (dicts of model inputs with
    labels), or weight magnitude ``||W_unit||^2`` without data.  In every layer the top
    ``round(keep_ratio * n)`` heads and neurons are kept (:func:`plan_width`) and the weights are
    sliced (:func:`prune_width`), in place.  Works on ``BertModel`` (with ``loss_fn`` for Taylor),
    ``BertForSequenceClassification`` and ``BertForQuestionAnswering``, FP or quantized.
    """
    plan = plan_width(model, keep_ratio, importance, batches, loss_fn)
    return prune_width(model, plan)


def apply_half_width_layout(model: nn.Layer) -> nn.Layer:
    """Rebuild the attention projections of a model built from a halved config (for loading).

    ``cls(config)`` with ``num_attention_heads = k`` makes heads of size ``hidden / k``; the halved
    model has ``k`` heads of the original size ``d = config.binbert_half_width["attention_head_size"]``:
    q/k/v become ``Linear(hidden, k d)`` and the output projection ``Linear(k d, hidden)`` (random
    weights, to be overwritten by the checkpoint).  Call it on the FP model right after
    construction, before ``quantize_model`` / ``set_state_dict``.  No-op without the record.
    """
    info = getattr(getattr(model, "config", None), HALF_WIDTH_CONFIG_KEY, None)
    if not info:
        return model
    d = int(info["attention_head_size"])
    hidden = int(model.config.hidden_size)
    for layer in get_bert(model).encoder.layers:
        attn = layer.self_attn
        if isinstance(attn, QuantMultiHeadAttention):
            raise ValueError("apply_half_width_layout must run before quantize_model")
        width = attn.num_heads * d
        if attn.head_dim == d and attn.q_proj.weight.shape == [hidden, width]:
            continue
        attn.head_dim = d
        attn.embed_dim = width  # the context width, as prune_width sets it
        attn.q_proj, attn.k_proj, attn.v_proj = (nn.Linear(hidden, width) for _ in range(3))
        attn.out_proj = nn.Linear(width, hidden)
    return model


def half_width_info(model: nn.Layer) -> Optional[Dict[str, Any]]:
    """The ``config.binbert_half_width`` record of a halved model (None for a full-width one)."""
    return getattr(getattr(model, "config", None), HALF_WIDTH_CONFIG_KEY, None) or None


def teacher_heads_for(student: nn.Layer, teacher: nn.Layer) -> Optional[List[List[int]]]:
    """Per student layer, the teacher heads the student's heads are (None: a full-width student).

    Attention-level distillation of a half-width student compares its head ``j`` of layer ``l``
    with head ``heads[l][j]`` of the teacher layer mapped to ``l``
    (:func:`~paddle_binbert.distill.losses.compute_distill_loss`, ``teacher_heads=``); the kept
    head indices are those of the recorded source model, so its head count must be the teacher's
    and the teacher must be full width.
    """
    info = half_width_info(student)
    if info is None:
        return None
    if half_width_info(teacher) is not None:
        raise ValueError("the teacher is a half-width model too: distil a half-width student from a full-width teacher")
    source = int(info["source_num_attention_heads"])
    teacher_heads = int(get_bert(teacher).config.num_attention_heads)
    if source != teacher_heads:
        raise ValueError(
            f"the half-width student keeps heads of a {source}-head model, the teacher has {teacher_heads} heads: "
            "its kept head indices do not name teacher heads"
        )
    return [list(map(int, h)) for h in info["heads"]]


def widen_by_split(model: nn.Layer, layers: Optional[Iterable[str]] = None) -> nn.Layer:
    """Split a (half-width) ternary model into the BinaryBERT binary model of doubled width, in place.

    This is TWS (:func:`~paddle_binbert.splitting.split_ternary_model`): every ternary matrix W
    becomes the summed pair ``bwn(W1) + bwn(W2) = twn(W)`` with ``W1 + W2 = W``, i.e. a binary
    linear over the doubled input ``[x, x] @ [W1; W2]`` (specs/splitting.md), so the logits are
    those of the ternary model and a half-width model ends with the binary weight count of the
    full-width one.  Heads and neurons are not duplicated (module docstring explains why that could
    not preserve the function).  ``config.binbert_half_width["widened"]`` is set when present.
    """
    if quant_config_of(model) is None:
        raise ValueError(
            f"{type(model).__name__} is not quantized: quantize_model(model, 'binarybert_ternary') "
            "and train the ternary model first"
        )
    split_ternary_model(model, layers)
    info = getattr(model.config, HALF_WIDTH_CONFIG_KEY, None)
    if info:
        info = dict(info)
        info["widened"] = True
        setattr(model.config, HALF_WIDTH_CONFIG_KEY, info)
    return model
