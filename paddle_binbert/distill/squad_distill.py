"""SQuAD v1.1 distillation of a fine-tuned QA teacher into a binarized student (``examples/squad_distill.py``).

    python examples/squad_distill.py --teacher_path runs/squad_teacher \\
        --train_file squad/mini_train-v1.1.json --predict_file squad/mini_dev-v1.1.json \\
        --output_dir runs/squad_bibert --bi --pred_distill --query_distill --key_distill \\
        --value_distill --intermediate_distill

Same command line as ``task_distill.py`` (every BiBERT-release flag, ``--method``, ``--config``
YAML, ``--resume`` ...) plus the SQuAD flags of ``run_squad.py`` (``--train_file``,
``--predict_file``, ``--doc_stride``, ``--max_query_length``, ``--n_best_size``,
``--max_answer_length``); ``--data_dir`` may name a folder holding ``train-v1.1.json`` and
``dev-v1.1.json`` instead. Teacher and student are ``BertForQuestionAnswering``; the student is the
student initialisation quantized with the method's QuantConfig. The prediction terms act on the
start and end logits: ``SCE_span = (SCE(z_s^start, z_t^start; T) + SCE(z_s^end, z_t^end; T)) / 2``
(padding masked; :func:`~paddle_binbert.distill.losses.span_soft_cross_entropy`), the hard-label
term is BERT's span loss; the intermediate terms (hidden states, attention scores, Q/K/V
direction matching) are those of the method's recipe, unchanged. Evaluation is the official v1.1
exact match / F1 on ``--predict_file``; the best checkpoint by F1 is kept, ``results.json`` holds
teacher and student EM / F1, the student's size and FLOPs.

``--length_adaptive`` works as in ``task_distill.py``: the full-length student gets the span
distillation loss, the sub-models (Drop-and-Restore: dropped tokens restored at the last layer, so
every token has a start/end logit) the KL to the full student's detached start and end
distributions, averaged; in a chain only the final stage uses LengthDrop.

Where the code lives: the parsers in :mod:`paddle_binbert.distill.cli` (built from the same flag
groups as ``task_distill.py``'s), the run in :mod:`paddle_binbert.distill.pipeline` (the same as
GLUE's), the SQuAD part (QA head, windows, EM / F1, predictions) in :mod:`paddle_binbert.tasks.squad`.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from ..train.arguments import SquadDistillArguments
from . import cli
from .cli import squad_main as main
from .cli import wants_squad

__all__ = ["build_parser", "main", "parse_args", "wants_squad"]


def build_parser() -> argparse.ArgumentParser:
    """The ``squad_distill.py`` parser (:func:`paddle_binbert.distill.cli.build_parser` for SQuAD)."""
    return cli.build_parser("squad")


def parse_args(argv: Optional[List[str]] = None) -> SquadDistillArguments:
    """The validated :class:`~paddle_binbert.train.arguments.SquadDistillArguments` of a SQuAD command line."""
    return cli.parse_args(argv, "squad")
