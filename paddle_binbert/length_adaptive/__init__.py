"""Length-adaptive inference (Dynamic-TinyBERT, after the Length-Adaptive Transformer of Kim & Cho 2021).

* :func:`length_adaptive_forward`: Drop-and-Restore forward pass driven by per-layer token budgets,
  for FP and quantized PaddleNLP BERTs, with LayerDrop;
* :func:`sandwich_loss`: LengthDrop training (sandwich rule, inplace distillation; the trainer's
  objective :class:`~paddle_binbert.train.objectives.LengthDropLoss`);
* :mod:`.cli`: the ``--length_adaptive`` flags shared by run_glue.py, run_squad.py and task_distill.py;
* :mod:`.search`: evolutionary search of budgets (``paddle-binbert search-length``): the algorithm
  (``search.evolution``), dev scores (``search.evaluators``), cache, reports, one run and its CLI;
* :mod:`.costs` / :mod:`.speed`: MACs, latency and end-to-end speed of a configuration.
"""

from .cli import add_length_drop_args, check_length_drop_args, length_drop_config, length_drop_settings
from .costs import length_config_macs, measure_latency, model_macs
from .drop_restore import LengthAdaptiveOutput, attention_significance, check_length_config, length_adaptive_forward
from .lengthdrop import (
    LengthDropConfig,
    inplace_distill_loss,
    sample_layer_skip,
    sample_length_config,
    sandwich_loss,
    smallest_length_config,
)

__all__ = [
    "LengthAdaptiveOutput",
    "LengthDropConfig",
    "add_length_drop_args",
    "attention_significance",
    "check_length_drop_args",
    "check_length_config",
    "inplace_distill_loss",
    "length_adaptive_forward",
    "length_config_macs",
    "length_drop_config",
    "length_drop_settings",
    "measure_latency",
    "model_macs",
    "sample_layer_skip",
    "sample_length_config",
    "sandwich_loss",
    "smallest_length_config",
]
