"""GLUE task distillation with the BiBERT release's command line (``examples/task_distill.py``).

    python examples/task_distill.py --model_type bert --student_model_name_or_path runs/sst2_teacher \\
        --teacher_model_type bert --teacher_path runs/sst2_teacher --task_name SST-2 \\
        --data_dir glue/SST-2 --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \\
        --num_train_epochs 1 --output_dir runs/sst2_bibert --bi --pred_distill \\
        --query_distill --key_distill --value_distill --intermediate_distill

The student starts from ``--student_model_name_or_path`` (an FP checkpoint, quantized here with
the method's preset, or an already-quantized checkpoint) and is distilled from the teacher with
PaddleNLP's Trainer. The best dev checkpoint is kept; ``results.json`` holds teacher and student
dev metrics, the student's size and FLOPs, steps and wall time.

``--method binarybert`` runs BinaryBERT's pipeline (ternary intermediate at 2.5x lr, ternary
prediction, TWS split, binary prediction; :mod:`paddle_binbert.distill.chain`). ``--half_width`` starts
it from a half-width ternary student (half of the heads and FFN neurons of every layer, ranked by
``--half_width_importance`` on the first ``--half_width_batches`` training batches,
:mod:`paddle_binbert.splitting.half_width`); the split stage brings the binary weight count back to
the full-width model's.

``--length_adaptive`` (with ``--num_sandwich``, ``--length_drop_ratio_bound``,
``--layer_dropout_prob``, as in ``run_glue.py``) distils with LengthDrop (Dynamic-TinyBERT): per step
the full-length student gets the distillation loss above, the smallest and ``--num_sandwich`` random
token-budget sub-models get the KL to the full student's detached outputs (inplace distillation),
``loss = (loss_distill + KL_smallest + sum KL_random) / (num_sandwich + 2)``. In a multi-stage run
(``--distill_chain``, BinaryBERT's pipeline) only the final stage is trained with LengthDrop.

Where the code lives: the parsers in :mod:`paddle_binbert.distill.cli`, the flag checks in
:mod:`paddle_binbert.distill.checks`, the run (the same for GLUE and SQuAD) in
:mod:`paddle_binbert.distill.pipeline`, the GLUE part (classifier head, features, metrics) in
:mod:`paddle_binbert.tasks.glue`.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from ..train.arguments import DistillArguments
from . import cli
from .cli import main

__all__ = ["build_parser", "main", "parse_args"]


def build_parser() -> argparse.ArgumentParser:
    """The ``task_distill.py`` parser (:func:`paddle_binbert.distill.cli.build_parser` for GLUE)."""
    return cli.build_parser("glue")


def parse_args(argv: Optional[List[str]] = None) -> DistillArguments:
    """The validated :class:`~paddle_binbert.train.arguments.DistillArguments` of a GLUE command line."""
    return cli.parse_args(argv, "glue")
