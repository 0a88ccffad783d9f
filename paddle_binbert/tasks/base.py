"""What a task family brings to a distillation run: :class:`DistillTask`.

The run sequence (:func:`paddle_binbert.distill.pipeline.run`: read the data, load teacher and
student, distil, evaluate, save, write ``results.json``) is one for every task; a task adapter
supplies the parts that differ between GLUE classification / regression and SQuAD extractive QA:
the model head, the features and their collator, the evaluation (metric or span post-processing),
the flag checks and defaults, and the task's entries of ``results.json``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..train.arguments import DistillArguments, RunArguments

__all__ = ["DistillTask", "first_batches", "load_head_model", "tokenizer_dir"]


def load_head_model(path: str, model_class: Any, model_config: Optional[str] = None) -> Any:
    """A ``model_class`` checkpoint (FP or quantized; a bare state dict with ``model_config``, the
    ``--model_config`` file or folder; :func:`paddle_binbert.models.load_model`), BERT's key/value
    cache off (distillation records attention, it never decodes)."""
    from ..checkpoints import load_model

    model = load_model(path, model_class=model_class, config=model_config)
    model.config.use_cache = False
    model.bert.config.use_cache = False
    return model


def tokenizer_dir(args: DistillArguments) -> str:
    """The first of the student, teacher and ``--model_config`` folders holding a ``vocab.txt``."""
    for path in (args.student_model_name_or_path, args.teacher_path, args.model_config):
        if path and os.path.isdir(path) and os.path.isfile(os.path.join(path, "vocab.txt")):
            return path
    raise FileNotFoundError("no vocab.txt in the student, teacher or --model_config folder")


def first_batches(features: Any, collate: Callable[[List[Any]], Dict[str, Any]], batch_size: int, count: int):
    """The first ``count`` batches of ``batch_size`` features (file order, the last may be short), collated."""
    n = min(len(features), count * batch_size)
    return [collate([features[j] for j in range(i, min(i + batch_size, n))]) for i in range(0, n, batch_size)]


class DistillTask:
    """A task family's part of distillation (subclasses: :class:`~paddle_binbert.tasks.glue.GlueTask`,
    :class:`~paddle_binbert.tasks.squad.SquadTask`).

    Attributes:
        script: the run's name in ``run_identity.json`` (``task_distill`` / ``squad_distill``).
        arguments: the dataclass of the task's flags.
    """

    script: str = ""
    arguments: type = DistillArguments

    def check_flags(self, args: DistillArguments) -> None:
        """Task checks before the shared ones (task name, data files); may normalise ``args``
        (``FlagError`` on a problem)."""
        raise NotImplementedError

    def defaults_key(self, args: DistillArguments) -> str:
        """The task's name in ``configs/`` (:func:`~paddle_binbert.train.defaults.training_defaults`)."""
        raise NotImplementedError

    def check_more_flags(self, args: DistillArguments) -> None:
        """Task checks after the shared training ones (defaults filled in); ``FlagError`` on a problem."""

    def metric(self, args: DistillArguments) -> str:
        """The dev metric that picks the best checkpoint."""
        raise NotImplementedError

    def load_model(self, path: str, model_config: Optional[str], flag: str) -> Any:
        """The task's model (FP or quantized) from ``path`` (``flag`` names it in errors), key/value cache off."""
        raise NotImplementedError

    def load_data(self, args: DistillArguments, tokenizer: Any) -> Tuple[Any, Any]:
        """``(training features, dev set)``; an empty one raises, naming its file."""
        raise NotImplementedError

    def is_regression(self, args: DistillArguments) -> bool:
        """Whether the head is a one-output regression (the prediction terms are then MSE)."""
        return False

    def trainer_kwargs(self, args: RunArguments, tokenizer: Any) -> Dict[str, Any]:
        """The task's arguments of :class:`~paddle_binbert.train.trainer.BinBertTrainer`: the
        collator and the evaluation (``compute_metrics`` or ``evaluation``); shared by fine-tuning
        (``args``: its settings) and distillation."""
        raise NotImplementedError

    def log_teacher(self, metrics: Dict[str, float]) -> None:
        """Log the teacher's dev metrics."""
        raise NotImplementedError

    def metrics(self, metrics: Dict[str, float], prefix: str) -> Dict[str, float]:
        """The dev metrics ``results.json`` keeps, without their ``prefix``."""
        raise NotImplementedError

    def results(
        self, args: DistillArguments, trainer: Any, train_ds: Any, dev: Any, teacher: Any, loss_config: Any
    ) -> Dict[str, Any]:
        """The task's own ``results.json`` entries, written after training (may write files, such as
        SQuAD's predictions)."""
        raise NotImplementedError

    def summary_line(self, results: Dict[str, Any], bits: str) -> str:
        """The line printed at the end of a run."""
        raise NotImplementedError

    def importance_batches(self, args: DistillArguments) -> List[Dict[str, Any]]:
        """``--half_width``'s Taylor batches: the first ``--half_width_batches`` training batches of
        ``--batch_size``, labelled, in file order."""
        raise NotImplementedError
