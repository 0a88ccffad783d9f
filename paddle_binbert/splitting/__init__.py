"""BinaryBERT's ternary weight splitting (TWS) and adaptive splitting (Bai et al., ACL 2021).

``split_ternary_model(model)`` turns a ``binarybert_ternary`` student into the equivalent
``binarybert`` (binary) student; :mod:`.adaptive` chooses which matrices to split under a budget;
:mod:`.half_width` gives BinaryBERT's half-width ternary start (``halve_model``) and its TWS
widening (``widen_by_split``).
"""

from .adaptive import (
    SplitPlan,
    choose_splits,
    knapsack_01,
    model_size_bytes,
    plan_adaptive_split,
    scale_costs,
    sensitivity_by_metric,
    sensitivity_by_proxy,
    split_costs,
)
from .half_width import (
    HALF_WIDTH_CONFIG_KEY,
    WidthPlan,
    apply_half_width_layout,
    half_width_info,
    halve_model,
    teacher_heads_for,
    widen_by_split,
)
from .tws import (
    SPLIT_CONFIG_KEY,
    SplitQuantEmbedding,
    SplitQuantLinear,
    apply_split_layout,
    binary_config_for,
    split_layers_of,
    split_ternary_model,
    splittable_layers,
    tws_split,
)

__all__ = [
    "HALF_WIDTH_CONFIG_KEY",
    "SPLIT_CONFIG_KEY",
    "SplitPlan",
    "SplitQuantEmbedding",
    "SplitQuantLinear",
    "WidthPlan",
    "apply_half_width_layout",
    "apply_split_layout",
    "binary_config_for",
    "choose_splits",
    "half_width_info",
    "halve_model",
    "knapsack_01",
    "model_size_bytes",
    "plan_adaptive_split",
    "scale_costs",
    "sensitivity_by_metric",
    "sensitivity_by_proxy",
    "split_costs",
    "split_layers_of",
    "split_ternary_model",
    "splittable_layers",
    "teacher_heads_for",
    "tws_split",
    "widen_by_split",
]
