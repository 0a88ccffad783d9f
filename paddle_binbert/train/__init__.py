"""Training: settings, command lines, fine-tuning, run setup, optimizers, learning curves.

* :mod:`.arguments`: the run settings as dataclasses (what every front end turns its flags into);
* :mod:`.flags`: the command-line flags the front ends share; :mod:`.cli`: the fine-tuning command
  lines (``examples/run_glue.py``, ``examples/run_squad.py``);
* :mod:`.finetune`: GLUE and SQuAD teacher fine-tuning;
* :mod:`.run_setup`: checks, output folder, seed, ``TrainingArguments`` and ``results.json``
  fields shared by fine-tuning and distillation (:mod:`paddle_binbert.distill.pipeline`);
* :mod:`.optimizers` (AdamW, BertAdam), :mod:`.defaults` (``configs/`` defaults),
  :mod:`.curves` (``learning_curve.csv``).
"""

from .optimizers import OPTIMIZERS, BertAdam

__all__ = ["OPTIMIZERS", "BertAdam"]
