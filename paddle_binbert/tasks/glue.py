"""GLUE distillation: ``BertForSequenceClassification`` teacher and student, GLUE features and metrics.

The prediction terms of the loss act on the classifier logits (MSE for STS-B, regression); the
best checkpoint is chosen by the task's main metric (CoLA mcc, STS-B mean of Pearson/Spearman,
others accuracy; :func:`~paddle_binbert.data.metrics.main_metric_name`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..data.glue import check_glue_files, get_task_spec
from ..train.arguments import DistillArguments, FlagError, RunArguments
from .base import DistillTask, first_batches, load_head_model, tokenizer_dir

__all__ = ["GlueTask", "glue_compute_metrics", "load_classifier", "train_split_name"]

logger = logging.getLogger("task_distill")


def train_split_name(args: DistillArguments) -> str:
    """The GLUE split distilled on: ``train``, or ``train_aug`` with ``--aug_train``."""
    return "train_aug" if args.aug_train else "train"


def glue_compute_metrics(task_name: str) -> Callable[[Any], Dict[str, float]]:
    """GLUE evaluation for the Trainer (its ``compute_metrics``): an ``EvalPrediction`` (logits and
    labels of every dev batch, gathered by PaddleNLP's evaluation loop) -> the task's metrics
    (:func:`~paddle_binbert.data.metrics.compute_glue_metrics`)."""
    from ..data.metrics import compute_glue_metrics

    def compute_metrics(prediction: Any) -> Dict[str, float]:
        logits = prediction.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        labels = prediction.label_ids
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        return compute_glue_metrics(task_name, logits, labels)

    return compute_metrics


def load_classifier(path: str, model_config: Optional[str] = None, flag: str = "") -> Any:
    """A ``BertForSequenceClassification`` checkpoint (:func:`~paddle_binbert.tasks.base.load_head_model`)."""
    from paddlenlp.transformers import BertForSequenceClassification

    return load_head_model(path, BertForSequenceClassification, model_config)


class GlueTask(DistillTask):
    """GLUE task distillation (``examples/task_distill.py``)."""

    script = "task_distill"
    arguments = DistillArguments

    def check_flags(self, args: DistillArguments) -> None:
        """``--task_name`` must be a GLUE task (normalised to its canonical spelling) and
        ``--data_dir`` must hold its training and dev files."""
        try:
            spec = get_task_spec(args.task_name)
            args.task_name = spec.name
            check_glue_files(args.data_dir, spec.name, splits=[train_split_name(args), *spec.dev_splits])
        except (ValueError, FileNotFoundError) as err:
            raise FlagError(str(err)) from None

    def defaults_key(self, args: DistillArguments) -> str:
        return args.task_name

    def metric(self, args: DistillArguments) -> str:
        from ..data.metrics import main_metric_name

        return main_metric_name(args.task_name)

    def load_model(self, path: str, model_config: Optional[str], flag: str) -> Any:
        return load_classifier(path, model_config, flag)

    def load_data(self, args: DistillArguments, tokenizer: Any) -> Tuple[Any, Any]:
        from ..data.glue import glue_split_path, load_glue_features
        from ..train.run_setup import require_examples

        spec = get_task_spec(args.task_name)
        train_split, dev_split = train_split_name(args), spec.dev_splits[0]
        train_ds = load_glue_features(
            args.data_dir, spec.name, train_split, tokenizer, args.max_seq_length, args.max_train_examples
        )
        require_examples(train_ds, glue_split_path(args.data_dir, spec.name, train_split), train_split)
        dev_ds = load_glue_features(
            args.data_dir, spec.name, dev_split, tokenizer, args.max_seq_length, args.max_eval_examples
        )
        require_examples(dev_ds, glue_split_path(args.data_dir, spec.name, dev_split), dev_split)
        return train_ds, dev_ds

    def is_regression(self, args: DistillArguments) -> bool:
        return get_task_spec(args.task_name).is_regression

    def trainer_kwargs(self, args: RunArguments, tokenizer: Any) -> Dict[str, Any]:
        """The GLUE collator and the task's metrics (:func:`glue_compute_metrics`)."""
        from ..data.glue import glue_collator

        spec = get_task_spec(args.task_name)
        return dict(data_collator=glue_collator(tokenizer), compute_metrics=glue_compute_metrics(spec.name))

    def log_teacher(self, metrics: Dict[str, float]) -> None:
        logger.info("teacher dev: %s", metrics)

    def metrics(self, metrics: Dict[str, float], prefix: str) -> Dict[str, float]:
        return {k.replace(prefix, ""): v for k, v in metrics.items()}

    def results(
        self, args: DistillArguments, trainer: Any, train_ds: Any, dev: Any, teacher: Any, loss_config: Any
    ) -> Dict[str, Any]:
        return {"num_train_examples": len(train_ds), "num_dev_examples": len(dev)}

    def summary_line(self, results: Dict[str, Any], bits: str) -> str:
        metric = results["main_metric"]
        return (
            f"[{results['task']}] teacher {metric} {results['teacher'].get(metric)} | student ({results['method']} "
            f"{bits}) {metric} {results['student'].get(metric)} | student size {results['student_size_mib']:.2f} MiB "
            f"(teacher {results['teacher_size_mib']:.2f} MiB)"
        )

    def importance_batches(self, args: DistillArguments) -> List[Dict[str, Any]]:
        from paddlenlp.transformers import BertTokenizer

        from ..data.glue import glue_collator, load_glue_features

        tokenizer = BertTokenizer.from_pretrained(tokenizer_dir(args))
        wanted = args.half_width_batches * args.batch_size
        limit = wanted if args.max_train_examples is None else min(wanted, args.max_train_examples)
        features = load_glue_features(
            args.data_dir, args.task_name, train_split_name(args), tokenizer, args.max_seq_length, limit
        )
        return first_batches(features, glue_collator(tokenizer), args.batch_size, args.half_width_batches)
