"""SQuAD v1.1 data pipeline: reading, windowed BERT features, post-processing and evaluation."""

from .evaluate import exact_match_score, f1_score, normalize_answer, squad_evaluate
from .features import (
    SquadFeature,
    collate_features,
    prepare_eval_features,
    prepare_train_features,
    tokenize_with_offsets,
)
from .postprocess import postprocess_predictions, write_predictions
from .reader import (
    SquadExample,
    SquadFormatError,
    is_squad_task,
    load_squad_json,
    parse_squad,
    read_squad_examples,
    subset_squad,
)

__all__ = [
    "SquadExample",
    "SquadFeature",
    "SquadFormatError",
    "collate_features",
    "exact_match_score",
    "f1_score",
    "is_squad_task",
    "load_squad_json",
    "normalize_answer",
    "parse_squad",
    "postprocess_predictions",
    "prepare_eval_features",
    "prepare_train_features",
    "read_squad_examples",
    "squad_evaluate",
    "subset_squad",
    "tokenize_with_offsets",
    "write_predictions",
]
