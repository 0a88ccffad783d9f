"""Knowledge-distillation objectives of TinyBERT, BiBERT, BiT and BinaryBERT (Paddle).

Every function takes the student tensor(s) first and the teacher tensor(s) second.  Teacher
tensors are detached inside (the teacher is a frozen constant), so gradients only reach the
student.  Formulas follow ``/work/shared/specs/distillation.md``:

* TinyBERT (Jiao et al., Findings of EMNLP 2020): soft cross-entropy on logits, MSE on attention
  scores and hidden states, layer map ``i <- i * L_T / L_S``.
* BiBERT (Qin et al., ICLR 2022): normalised distance ``D`` and Direction-Matching Distillation on
  the Q / K / V similarity matrices.
* BiT (Liu et al., NeurIPS 2022): SCE + hidden-state MSE.
* BinaryBERT (Bai et al., ACL 2021): two stages, intermediate (MSE) then prediction (SCE); a
  half-width student's attention scores are compared with the teacher's kept heads
  (``compute_distill_loss(..., teacher_heads=)``).
* Span prediction (SQuAD, extractive QA): the prediction terms average the start and end position
  distributions (:func:`span_soft_cross_entropy`, :func:`span_hard_label_loss`), padding masked.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Optional, Sequence, Union

import paddle
import paddle.nn.functional as F

Tensor = paddle.Tensor
FitDense = Optional[Union[Callable[[Tensor], Tensor], Sequence[Callable[[Tensor], Tensor]]]]

#: Masked attention entries (additive mask of -1e4 / -inf) are at or below this value.
MASK_THRESHOLD = -100.0
#: Guards the square roots / divisions of :func:`normalized_distance` at zero.
_EPS = 1e-12

TERMS = ("pred", "hard_label", "att_mse", "hid_mse", "hid_distance", "query", "key", "value")


def soft_cross_entropy(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, sum_classes: bool = False
) -> Tensor:
    """Soft cross-entropy (TinyBERT, Jiao et al. 2020; Hinton et al. 2015), no ``T^2`` factor.

    ``SCE = mean_{b,c} -softmax(z_t / T)_bc * log_softmax(z_s / T)_bc``: the mean over batch *and*
    classes, i.e. the per-example cross-entropy divided by the number of classes, as the BiBERT,
    BiT and TinyBERT releases compute it (distillation.md); this fixes the prediction term's weight
    against the other terms of a recipe. ``sum_classes=True``: ``mean_b sum_c`` (the per-example
    cross-entropy), used over sequence positions by :func:`span_soft_cross_entropy`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    target = F.softmax(teacher_logits.detach() / temperature, axis=-1)
    log_prob = F.log_softmax(student_logits / temperature, axis=-1)
    loss = -target * log_prob
    return loss.sum(axis=-1).mean() if sum_classes else loss.mean()


def _mse(student: Tensor, teacher: Tensor) -> Tensor:
    """``MSE(a, b) = mean((a - b)^2)`` over all elements, the teacher detached."""
    diff = student - teacher.detach()
    return (diff * diff).mean()


def prediction_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, is_regression: bool = False
) -> Tensor:
    """Prediction-layer distillation (TinyBERT): ``SCE(z_s, z_t; T)``, or ``MSE(z_s, z_t)`` for regression.

    Regression (STS-B) logits of shape ``[B]`` or ``[B, 1]`` are flattened before the MSE.
    """
    if is_regression:
        return _mse(student_logits.reshape([-1]), teacher_logits.reshape([-1]))
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


def hard_label_loss(logits: Tensor, labels: Tensor, is_regression: bool = False) -> Tensor:
    """Ground-truth loss: ``CE(z, y) = mean_b -log_softmax(z_b)[y_b]``, or ``mean (z - y)^2`` for regression.

    Used with weight 0.5 in the BiBERT recipe (Qin et al. 2022).
    """
    if is_regression:
        return _mse(logits.reshape([-1]), labels.reshape([-1]).astype(logits.dtype))
    return F.cross_entropy(logits, labels.reshape([-1]).astype("int64"), reduction="mean")


#: Logit given to padded positions before a softmax over sequence positions (finite: 0 * it stays 0).
MASKED_LOGIT = -1e4


def mask_logits(logits: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Position logits ``[B, L]`` with padded positions (``mask == 0``) set to ``MASKED_LOGIT`` (-1e4).

    After this, a softmax over positions gives padding (numerically) zero probability, so the span
    losses do not depend on how far a batch is padded. ``mask=None`` returns ``logits`` unchanged.
    """
    if mask is None:
        return logits
    keep = mask if mask.dtype == paddle.bool else mask != 0
    return paddle.where(keep, logits, paddle.full_like(logits, MASKED_LOGIT))


def span_soft_cross_entropy(
    student_start: Tensor,
    student_end: Tensor,
    teacher_start: Tensor,
    teacher_end: Tensor,
    temperature: float = 1.0,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Prediction distillation for extractive QA: soft cross-entropy of start and end, averaged.

    ``L = (SCE(z_s^start, z_t^start; T) + SCE(z_s^end, z_t^end; T)) / 2`` with
    :func:`soft_cross_entropy` over the sequence positions of ``[B, L]`` logits (softmax over L),
    padded positions (``mask == 0``) masked out of both distributions first. Here SCE is summed over
    positions (the per-example cross-entropy): a mean over them would depend on the batch's padding. This is TinyBERT's
    prediction-layer loss (Jiao et al., 2020) applied to the two pointer distributions of BERT's
    SQuAD head (Devlin et al., 2019), as in the SQuAD experiments of BinaryBERT (Bai et al., 2021)
    and BiT (Liu et al., 2022).
    """
    start = soft_cross_entropy(mask_logits(student_start, mask), mask_logits(teacher_start, mask), temperature, True)
    end = soft_cross_entropy(mask_logits(student_end, mask), mask_logits(teacher_end, mask), temperature, True)
    return (start + end) / 2


def span_hard_label_loss(
    start_logits: Tensor,
    end_logits: Tensor,
    start_positions: Tensor,
    end_positions: Tensor,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Ground-truth span loss of BERT's SQuAD head (Devlin et al., 2019), padding masked.

    ``L = (CE(z^start, y_start) + CE(z^end, y_end)) / 2`` with ``CE(z, y) = mean_b -log_softmax(z_b)[y_b]``
    over sequence positions. Windows without the answer have target 0 (``[CLS]``).
    """
    start = hard_label_loss(mask_logits(start_logits, mask), start_positions)
    end = hard_label_loss(mask_logits(end_logits, mask), end_positions)
    return (start + end) / 2


def _unmask(scores: Tensor) -> Tensor:
    """Set entries ``<= -100`` (additive attention mask) to 0."""
    return paddle.where(scores <= MASK_THRESHOLD, paddle.zeros_like(scores), scores)


def attention_mse(student_scores: Tensor, teacher_scores: Tensor) -> Tensor:
    """Attention-based distillation (TinyBERT): ``MSE(A_s, A_t)`` on pre-softmax scores ``[B, h, L, L]``.

    Entries ``<= -100`` (padding mask) are set to 0 in both tensors before the mean squared error.
    """
    return _mse(_unmask(student_scores), _unmask(teacher_scores.detach()))


def select_heads(scores: Tensor, heads: Sequence[int]) -> Tensor:
    """The heads ``heads`` (indices, in order) of per-head tensors ``[B, h, L, L]``: ``scores[:, heads]``."""
    index = paddle.to_tensor(list(heads), dtype="int64")
    return paddle.index_select(scores, index, axis=1)


#: terms defined per head on equal head sets; with a half-width student (``teacher_heads``) only
#: ``att_mse`` compares matching heads, these are refused
_WIDTH_BOUND_TERMS = ("query", "key", "value")


def check_teacher_heads(cfg: DistillLossConfig, teacher_heads: Optional[Sequence[Sequence[int]]]) -> None:
    """Refuse the terms that cannot compare a half-width student with its teacher.

    With ``teacher_heads`` (BinaryBERT's half-width student, :mod:`paddle_binbert.splitting.half_width`)
    hidden states keep their width (``hid_mse`` / ``hid_distance`` unchanged), attention scores are
    compared head by head with the teacher's kept heads (``att_mse``) and the prediction terms see
    logits; BiBERT's direction matching on Q / K / V (``query`` / ``key`` / ``value``) is not defined
    for a student with fewer heads and raises ``ValueError``.
    """
    if teacher_heads is None:
        return
    bad = [name for name in _WIDTH_BOUND_TERMS if name in cfg.weights()]
    if bad:
        raise ValueError(
            f"distillation terms {bad} (BiBERT direction matching on Q/K/V) are not supported for a half-width "
            "student (fewer heads than the teacher); use att_mse / hid_mse / pred (BinaryBERT) instead"
        )


def _apply_fit(hidden: Tensor, fit_dense: FitDense, index: int) -> Tensor:
    if fit_dense is None:
        return hidden
    if isinstance(fit_dense, Sequence):
        return fit_dense[index](hidden)
    return fit_dense(hidden)


def hidden_mse(student_hidden: Tensor, teacher_hidden: Tensor, fit_dense: Optional[Callable] = None) -> Tensor:
    """Hidden-state distillation (TinyBERT): ``MSE(fit(H_s), H_t)``.

    ``fit`` is the learned ``fit_dense`` Linear ``d_S -> d_T`` when the widths differ, identity otherwise.
    """
    if fit_dense is not None:
        student_hidden = fit_dense(student_hidden)
    return _mse(student_hidden, teacher_hidden)


def normalized_distance(x_s: Tensor, x_t: Tensor) -> Tensor:
    """Normalised distance of BiBERT (Qin et al. 2022): ``|| X_s/||X_s||_F - X_t/||X_t||_F ||_F``.

    Frobenius norms over the whole (batch) tensor, the result is not squared.  A ``1e-12`` guard
    keeps the value finite at ``||X|| = 0`` and the gradient finite at distance 0.
    """
    x_t = x_t.detach()
    ns = paddle.sqrt((x_s * x_s).sum()).clip(min=_EPS)
    nt = paddle.sqrt((x_t * x_t).sum()).clip(min=_EPS)
    diff = x_s / ns - x_t / nt
    return paddle.sqrt((diff * diff).sum() + _EPS * _EPS)


def _split_heads(f: Tensor, num_heads: int) -> Tensor:
    """``[B, L, hidden] -> [B, heads, L, d]``."""
    b, seq, hidden = f.shape
    if hidden % num_heads:
        raise ValueError(f"hidden size {hidden} not divisible by num_heads {num_heads}")
    return f.reshape([b, seq, num_heads, hidden // num_heads]).transpose([0, 2, 1, 3])


def similarity_matrix(f: Tensor, num_heads: int) -> Tensor:
    """Per-head similarity of BiBERT's DMD: ``P_F = F F^T / sqrt(d)``, ``[B, L, hidden] -> [B, h, L, L]``."""
    heads = _split_heads(f, num_heads)
    d = heads.shape[-1]
    return paddle.matmul(heads, heads, transpose_y=True) / math.sqrt(d)


def direction_matching_loss(f_s: Tensor, f_t: Tensor, num_heads: int) -> Tensor:
    """Direction-Matching Distillation, one of Q / K / V at one layer (BiBERT, Qin et al. 2022).

    ``L_F = D(P_F,s, P_F,t)`` with ``P_F = F F^T / sqrt(d)`` per head and ``D`` the
    :func:`normalized_distance`.  Student and teacher may differ in width (not in head count).
    """
    return normalized_distance(similarity_matrix(f_s, num_heads), similarity_matrix(f_t.detach(), num_heads))


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """TinyBERT uniform layer map: student layer ``i`` (1-based) <- teacher layer ``i * k``, ``k = L_T / L_S``.

    Returns ``L_S + 1`` indices; entry 0 maps the embedding output to the teacher's (``0 -> 0``),
    so the list indexes hidden-state lists directly.  For per-layer lists (scores, Q/K/V) use
    entries ``1..L_S`` minus one.  Raises ``ValueError`` when ``L_T`` is not a multiple of ``L_S``.
    """
    if num_student_layers <= 0 or num_teacher_layers <= 0:
        raise ValueError("layer counts must be positive")
    if num_teacher_layers % num_student_layers:
        raise ValueError(f"teacher depth {num_teacher_layers} is not a multiple of student depth {num_student_layers}")
    k = num_teacher_layers // num_student_layers
    return [i * k for i in range(num_student_layers + 1)]


@dataclass
class DistillOutputs:
    """What a model exposes for distillation.

    ``hidden_states``: embedding output first, then the output of each layer (``L + 1`` tensors
    ``[B, L, hidden]``).  ``scores``: per layer, masked pre-softmax attention scores ``[B, h, L, L]``.
    ``queries`` / ``keys`` / ``values``: per layer, projections ``[B, L, hidden]`` before activation
    quantization.  Lists may stay empty when the corresponding loss terms are off.

    Span (extractive QA) outputs: ``logits`` holds the start logits ``[B, L]``, ``end_logits`` the
    end logits and ``logit_mask`` the attention mask ``[B, L]`` (1 = token); the prediction terms
    then use :func:`span_soft_cross_entropy` / :func:`span_hard_label_loss`. ``end_logits=None``
    (the default) means ordinary classification / regression logits.
    """

    logits: Tensor
    hidden_states: list[Tensor] = field(default_factory=list)
    scores: list[Tensor] = field(default_factory=list)
    queries: list[Tensor] = field(default_factory=list)
    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    end_logits: Optional[Tensor] = None
    logit_mask: Optional[Tensor] = None


@dataclass
class DistillLossConfig:
    """Weights of each distillation term (0 = not computed) and the SCE temperature.

    ``lr_multiplier`` is informational for the trainer (BinaryBERT stage 1 trains at ``lr * 2.5``);
    the loss does not use it.
    """

    pred: float = 0.0
    hard_label: float = 0.0
    att_mse: float = 0.0
    hid_mse: float = 0.0
    hid_distance: float = 0.0
    query: float = 0.0
    key: float = 0.0
    value: float = 0.0
    temperature: float = 1.0
    lr_multiplier: float = 1.0

    def weights(self) -> dict[str, float]:
        """The non-zero term weights, ``{term: weight}``."""
        return {name: float(getattr(self, name)) for name in TERMS if getattr(self, name) != 0}

    def with_overrides(self, **kwargs: float) -> DistillLossConfig:
        """A copy with some weights replaced (per-term CLI flags on top of a preset)."""
        unknown = set(kwargs) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown distillation terms {sorted(unknown)}")
        return replace(self, **kwargs)

    @classmethod
    def tinybert(cls, temperature: float = 1.0) -> DistillLossConfig:
        """TinyBERT's two stages in one: ``SCE(z_s, z_t; T) + MSE_att + MSE_hid``."""
        return cls(pred=1.0, att_mse=1.0, hid_mse=1.0, temperature=temperature)

    @classmethod
    def tinybert_intermediate(cls) -> DistillLossConfig:
        """TinyBERT stage 1: ``MSE_att + MSE_hid``."""
        return cls(att_mse=1.0, hid_mse=1.0)

    @classmethod
    def tinybert_pred(cls, temperature: float = 1.0) -> DistillLossConfig:
        """TinyBERT stage 2: ``SCE(z_s, z_t; T)``."""
        return cls(pred=1.0, temperature=temperature)

    @classmethod
    def bibert(cls) -> DistillLossConfig:
        """BiBERT: ``SCE(T=1) + 0.5 * CE + L_Q + L_K + L_V + sum_{l=0..L} D(H_s^l, H_t^l)``."""
        return cls(pred=1.0, hard_label=0.5, query=1.0, key=1.0, value=1.0, hid_distance=1.0, temperature=1.0)

    @classmethod
    def bit(cls, temperature: float = 1.0) -> DistillLossConfig:
        """BiT: ``SCE(T) + MSE_hid`` (no attention term)."""
        return cls(pred=1.0, hid_mse=1.0, temperature=temperature)

    @classmethod
    def binarybert_stage1(cls) -> DistillLossConfig:
        """BinaryBERT stage 1: ``MSE_att + MSE_hid``, trained at ``lr * 2.5``."""
        return cls(att_mse=1.0, hid_mse=1.0, lr_multiplier=2.5)

    @classmethod
    def binarybert_stage2(cls, temperature: float = 1.0) -> DistillLossConfig:
        """BinaryBERT stage 2: ``SCE(z_s, z_t; T)``."""
        return cls(pred=1.0, temperature=temperature)


#: The named loss recipes (the :class:`DistillLossConfig` constructors of the same names): a method's
#: ``loss`` in ``configs/methods/<method>.yaml`` and a chain stage's ``loss``.
LOSS_RECIPES = (
    "tinybert",
    "tinybert_intermediate",
    "tinybert_pred",
    "bibert",
    "bit",
    "binarybert_stage1",
    "binarybert_stage2",
)


def loss_recipe(name: str, temperature: float = 1.0) -> DistillLossConfig:
    """The recipe ``name`` (:data:`LOSS_RECIPES`); ``temperature`` reaches the recipes whose
    constructor takes one (``bibert`` keeps T = 1 as a chain stage's loss; a run's ``--temperature``
    still overrides it through :func:`~.recipes.loss_config_from_flags`)."""
    if name not in LOSS_RECIPES:
        raise ValueError(f"unknown loss recipe {name!r}; valid recipes: {list(LOSS_RECIPES)}")
    recipe = getattr(DistillLossConfig, name)
    if "temperature" in inspect.signature(recipe).parameters:
        return recipe(temperature)
    return recipe()


def _layer_pairs(n_student: int, n_teacher: int, with_embeddings: bool) -> list[tuple[int, int]]:
    """Index pairs (student, teacher) into per-layer lists, following :func:`layer_map`."""
    if with_embeddings:
        mapping = layer_map(n_student - 1, n_teacher - 1)
        return list(enumerate(mapping))
    mapping = layer_map(n_student, n_teacher)
    return [(i - 1, mapping[i] - 1) for i in range(1, n_student + 1)]


def _need(name: str, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> None:
    if not student or not teacher:
        raise ValueError(f"distillation term needs DistillOutputs.{name} from both student and teacher")


def compute_distill_loss(
    cfg: DistillLossConfig,
    student_out: DistillOutputs,
    teacher_out: DistillOutputs,
    labels: Optional[Union[Tensor, Sequence[Tensor]]] = None,
    is_regression: bool = False,
    num_heads: int = 12,
    fit_dense: FitDense = None,
    teacher_heads: Optional[Sequence[Sequence[int]]] = None,
) -> tuple[Tensor, dict[str, float]]:
    """Weighted distillation objective ``total = sum_term w_term * loss_term`` (spec recipes).

    Terms (each summed over the mapped layers of :func:`layer_map`): ``pred`` = SCE(T) / MSE
    (span outputs: :func:`span_soft_cross_entropy`), ``hard_label`` = CE / MSE (span outputs:
    :func:`span_hard_label_loss` with ``labels=(start_positions, end_positions)``),
    ``att_mse = sum_l MSE(A_s^l, A_t^map(l))``,
    ``hid_mse = sum_{l=0..L} MSE(fit(H_s^l), H_t^map(l))``,
    ``hid_distance = sum_{l=0..L} D(fit(H_s^l), H_t^map(l))`` and ``query`` / ``key`` / ``value`` =
    ``sum_l D(P_F,s^l, P_F,t^map(l))``.  ``fit_dense`` is one callable shared by all hidden states or
    one per hidden state.  Returns the total (a scalar tensor) and the unweighted value of each
    computed term plus ``"total"`` as Python floats; zero-weight terms are skipped.

    ``teacher_heads`` (a half-width student, BinaryBERT): per student layer ``l``, the teacher heads
    its heads correspond to; then ``att_mse = sum_l MSE(A_s^l, A_t^map(l)[:, teacher_heads[l]])``
    (:func:`select_heads`), and the Q/K/V terms are refused (:func:`check_teacher_heads`).
    """
    check_teacher_heads(cfg, teacher_heads)
    weights = cfg.weights()
    terms: dict[str, Tensor] = {}
    span = student_out.end_logits is not None
    if span and (teacher_out.end_logits is None or is_regression):
        raise ValueError("span (QA) student outputs need span teacher outputs and a non-regression task")
    if "pred" in weights:
        if span:
            terms["pred"] = span_soft_cross_entropy(
                student_out.logits,
                student_out.end_logits,
                teacher_out.logits,
                teacher_out.end_logits,
                cfg.temperature,
                student_out.logit_mask,
            )
        else:
            terms["pred"] = prediction_loss(student_out.logits, teacher_out.logits, cfg.temperature, is_regression)
    if "hard_label" in weights:
        if labels is None:
            raise ValueError("hard_label term needs labels")
        if span:
            if not isinstance(labels, (tuple, list)) or len(labels) != 2:
                raise ValueError("span outputs need labels=(start_positions, end_positions)")
            terms["hard_label"] = span_hard_label_loss(
                student_out.logits, student_out.end_logits, labels[0], labels[1], student_out.logit_mask
            )
        else:
            terms["hard_label"] = hard_label_loss(student_out.logits, labels, is_regression)
    if "att_mse" in weights:
        _need("scores", student_out.scores, teacher_out.scores)
        pairs = _layer_pairs(len(student_out.scores), len(teacher_out.scores), with_embeddings=False)
        if teacher_heads is not None and len(teacher_heads) != len(student_out.scores):
            raise ValueError(f"teacher_heads has {len(teacher_heads)} layers, the student {len(student_out.scores)}")
        teacher_scores = [
            teacher_out.scores[t] if teacher_heads is None else select_heads(teacher_out.scores[t], teacher_heads[s])
            for s, t in pairs
        ]
        terms["att_mse"] = paddle.add_n(
            [attention_mse(student_out.scores[s], scores) for (s, _), scores in zip(pairs, teacher_scores)]
        )
    for name, fn in (("hid_mse", _mse), ("hid_distance", normalized_distance)):
        if name in weights:
            _need("hidden_states", student_out.hidden_states, teacher_out.hidden_states)
            pairs = _layer_pairs(len(student_out.hidden_states), len(teacher_out.hidden_states), with_embeddings=True)
            terms[name] = paddle.add_n(
                [
                    fn(_apply_fit(student_out.hidden_states[s], fit_dense, s), teacher_out.hidden_states[t])
                    for s, t in pairs
                ]
            )
    for name, attr in (("query", "queries"), ("key", "keys"), ("value", "values")):
        if name in weights:
            student_list, teacher_list = getattr(student_out, attr), getattr(teacher_out, attr)
            _need(attr, student_list, teacher_list)
            pairs = _layer_pairs(len(student_list), len(teacher_list), with_embeddings=False)
            terms[name] = paddle.add_n(
                [direction_matching_loss(student_list[s], teacher_list[t], num_heads) for s, t in pairs]
            )
    if not terms:
        raise ValueError("all distillation weights are 0")
    total = paddle.add_n([weights[name] * value for name, value in terms.items()])
    report = {name: float(value.item()) for name, value in terms.items()}
    report["total"] = float(total.item())
    return total, report
