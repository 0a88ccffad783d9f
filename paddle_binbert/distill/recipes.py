"""Methods (``--method``): each file ``configs/methods/<method>.yaml`` names a quantization preset
and a default loss recipe (read by :func:`get_method`), and the BiBERT release's loss flags
(``--pred_distill --intermediate_distill --query_distill ...``) turn into a
:class:`DistillLossConfig` here, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Dict

from ..train.defaults import config_dir, method_names, method_spec
from .losses import DistillLossConfig, loss_recipe

__all__ = ["Method", "get_method", "loss_config_from_flags", "method_names"]


@dataclass(frozen=True)
class Method:
    """A student recipe (``configs/methods/<name>.yaml``): the ``QuantConfig`` preset and the loss
    recipe (:data:`~.losses.LOSS_RECIPES`) used when no loss flag is given."""

    name: str
    quant_preset: str
    loss: str
    description: str

    def default_loss(self, temperature: float = 1.0) -> DistillLossConfig:
        """The method's loss recipe at ``temperature``."""
        return loss_recipe(self.loss, temperature)


@cache
def _method(name: str, folder: str) -> Method:
    from ..quant.config import QuantConfig

    method = Method(name=name, **method_spec(name, Path(folder)))
    try:  # a bad preset or recipe name fails here, naming the file and the valid names
        QuantConfig.from_preset(method.quant_preset)
        loss_recipe(method.loss)
    except ValueError as err:
        raise ValueError(f"{folder}/methods/{name}.yaml: {err}") from None
    return method


def get_method(name: str) -> Method:
    """The method ``name`` from ``configs/methods/<name>.yaml``; unknown names list the valid ones, a
    file naming an unknown preset or loss recipe is refused with the valid ones."""
    return _method(name, str(config_dir()))


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
