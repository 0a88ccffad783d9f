"""Methods (``--method``): each names a quantization preset and a default loss recipe, and the
BiBERT release's loss flags (``--pred_distill --intermediate_distill --query_distill ...``)
turn into a :class:`DistillLossConfig` here, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

from .losses import DistillLossConfig

__all__ = ["Method", "METHODS", "get_method", "loss_config_from_flags"]


@dataclass(frozen=True)
class Method:
    """A student recipe: the QuantConfig preset and the loss used when no loss flag is given."""

    name: str
    quant_preset: str
    default_loss: Callable[[float], DistillLossConfig]
    description: str


def _tinybert_both(temperature: float) -> DistillLossConfig:
    return DistillLossConfig(pred=1.0, att_mse=1.0, hid_mse=1.0, temperature=temperature)


METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        Method("bibert", "bibert", lambda t: DistillLossConfig.bibert(), "BiBERT 1-1-1: Bi-Attention + DMD"),
        Method("bit", "bit", DistillLossConfig.bit, "BiT 1-1-1: elastic activations, SCE + hidden MSE"),
        Method("bwn", "bwn", _tinybert_both, "BinaryBERT's BWN 1-1-1 baseline, TinyBERT losses in one stage"),
        Method(
            "binarybert_ternary",
            "binarybert_ternary",
            lambda t: DistillLossConfig.binarybert_stage1(),
            "BinaryBERT ternary stage (TWN weights, 4-bit LSQ activations), stage-1 losses",
        ),
        Method("binarybert", "binarybert", DistillLossConfig.binarybert_stage2, "BinaryBERT 1-1-4, prediction loss"),
        Method("tinybert", "fp", _tinybert_both, "full-precision TinyBERT-style task distillation"),
    )
}


def get_method(name: str) -> Method:
    """Look a method up by name; unknown names list the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown --method {name!r}; valid methods: {sorted(METHODS)}")
    return METHODS[name]


def loss_config_from_flags(
    method: Method,
    bi: bool,
    pred_distill: bool,
    intermediate_distill: bool,
    query_distill: bool,
    key_distill: bool,
    value_distill: bool,
    att_distill: bool = False,
    temperature: float = 1.0,
) -> DistillLossConfig:
    """The loss of a run, from the BiBERT-release flags (distillation.md, "Recipes").

    With no flag, the method's default recipe. Otherwise each flag switches its term on:
    ``--pred_distill`` = SCE(T) (plus 0.5 * hard-label CE under ``--bi``, as BiBERT);
    ``--intermediate_distill`` = the normalised hidden-state distance D under ``--bi`` (what the
    BiBERT release computes), TinyBERT's hidden MSE + attention MSE otherwise;
    ``--att_distill`` = attention-score MSE; ``--query/key/value_distill`` = DMD on Q/K/V.
    """
    flags = (pred_distill, intermediate_distill, query_distill, key_distill, value_distill, att_distill)
    if not any(flags):
        cfg = method.default_loss(temperature)
        return cfg.with_overrides(temperature=temperature)
    weights: Dict[str, float] = {}
    if pred_distill:
        weights["pred"] = 1.0
        if bi:
            weights["hard_label"] = 0.5
    if intermediate_distill:
        if bi:
            weights["hid_distance"] = 1.0
        else:
            weights["hid_mse"] = 1.0
            weights["att_mse"] = 1.0
    if att_distill:
        weights["att_mse"] = 1.0
    for flag, name in ((query_distill, "query"), (key_distill, "key"), (value_distill, "value")):
        if flag:
            weights[name] = 1.0
    return DistillLossConfig(temperature=temperature, **weights)
