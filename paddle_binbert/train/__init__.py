"""Training: settings, command lines, fine-tuning, run setup, optimizers, learning curves.

* :mod:`.arguments`: the run settings as dataclasses (what every front end turns its flags into);
* :mod:`.flags`: the command-line flags the front ends share; :mod:`.cli`: the fine-tuning command
  lines (``examples/run_glue.py``, ``examples/run_squad.py``);
* :mod:`.trainer`: :class:`~paddle_binbert.train.trainer.BinBertTrainer`, the one training loop of
  fine-tuning and distillation (PaddleNLP's ``Trainer``), whose loss is a strategy of
  :mod:`.objectives` (task loss | distillation | LengthDrop's sandwich) and whose evaluation is the
  task adapter's (:mod:`paddle_binbert.tasks`); :mod:`.output_dir`: checkpoints, resume, ``results.json``;
* :mod:`.finetune`: GLUE and SQuAD teacher fine-tuning;
* :mod:`.run_setup`: checks, output folder, seed, ``TrainingArguments`` and ``results.json``
  fields shared by fine-tuning and distillation (:mod:`paddle_binbert.distill.pipeline`);
* :mod:`.optimizers` (AdamW, BertAdam), :mod:`.defaults` (``configs/`` defaults),
  :mod:`.curves` (``learning_curve.csv``).
"""

from .optimizers import OPTIMIZERS, BertAdam

__all__ = ["OPTIMIZERS", "BertAdam"]
