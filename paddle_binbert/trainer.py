"""PaddleNLP ``Trainer`` with length-grouped batches, a configurable no-decay rule and GLUE helpers."""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple

import paddle
from paddlenlp.trainer import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
from paddlenlp.trainer.trainer_utils import IntervalStrategy
from paddlenlp.trainer.trainer_utils import get_last_checkpoint as _paddlenlp_last_checkpoint
from paddlenlp.utils.log import logger

from paddle_binbert.data.metrics import compute_glue_metrics
from paddle_binbert.data.sampler import LengthGroupedBatchSampler
from paddle_binbert.io_utils import write_json_atomic
from paddle_binbert.quant.calibration import calibrate, calibration_batches, data_init_quantizers
from paddle_binbert.train.curves import CURVE_FILE, LearningCurveCallback
from paddle_binbert.train.optimizers import OPTIMIZERS, BertAdam

__all__ = [
    "NO_DECAY_KEYWORDS",
    "BinBertTrainer",
    "FinalEvaluationCallback",
    "RESULTS_FILE",
    "check_output_dir",
    "clear_previous_run",
    "get_last_checkpoint",
    "glue_compute_metrics",
    "is_no_decay_parameter",
    "make_training_args",
    "previous_run_files",
    "stable_parameter_names",
    "write_results",
]

# Parameter-name fragments (lower case) that get no weight decay: biases, LayerNorm weights
# (PaddleNLP names them ``layer_norm``/``norm1``/``norm2``), quantizer scales and clip values.
NO_DECAY_KEYWORDS = ("bias", "norm", "quantizer", "clip")
# Parameter-name fragment of the learnable quantizer parameters (elastic alpha/beta, LSQ step, clip
# value): they live in ``*_quantizer`` sublayers and get their own learning rate (``clip_lr``).
QUANTIZER_KEYWORD = "quantizer"


def is_no_decay_parameter(name: str, param: Optional[paddle.Tensor] = None) -> bool:
    """Default no-decay rule: True if the structured parameter name contains a :data:`NO_DECAY_KEYWORDS` entry."""
    lowered = name.lower()
    return any(keyword in lowered for keyword in NO_DECAY_KEYWORDS)


def stable_parameter_names(model: paddle.nn.Layer) -> None:
    """Name every parameter after its structured name (``bert.encoder.layers.0.linear1.weight``).

    Optimizer state is saved keyed by ``param.name``; Paddle's automatic names (``linear_12.w_0``)
    depend on how many layers the process built before, so a resumed run that builds its models in
    another order (a distillation chain resuming its second stage, a teacher loaded first) would not
    find its moments. Structured names are the same in every process.
    """
    for name, param in model.named_parameters():
        param.name = name


class FinalEvaluationCallback(TrainerCallback):
    """Evaluate (and checkpoint) after the last step when evaluation runs every N steps.

    PaddleNLP's step schedule skips the final step unless it is a multiple of ``eval_steps``, so the
    last updates would never compete for the best checkpoint.
    """

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> Any:
        """Request evaluation/saving at ``state.max_steps``."""
        if state.max_steps and state.global_step >= state.max_steps:
            if args.evaluation_strategy == IntervalStrategy.STEPS:
                control.should_evaluate = True
            if args.save_strategy == IntervalStrategy.STEPS:
                control.should_save = True
        return control


class BinBertTrainer(Trainer):
    """``paddlenlp.trainer.Trainer`` for BERT fine-tuning / distillation on CPU or GPU.

    Differences from the base class:

    * the training dataloader uses :class:`LengthGroupedBatchSampler` (shuffled, examples of
      similar length batched together, deterministic for ``args.seed``, sharded by data-parallel
      rank); pass ``group_by_length=False`` for PaddleNLP's plain random batches;
    * every evaluation adds a row to ``OUTPUT_DIR/learning_curve.csv``
      (:class:`~paddle_binbert.train.curves.LearningCurveCallback`);
    * learned activation scales are calibrated on random batches before training
      (``calibration_batches``), and ``optimizer_name`` picks AdamW or BertAdam;
    * weight decay skips every parameter for which :meth:`no_decay` is True (biases, LayerNorm,
      quantizer and clip parameters by default); override :meth:`no_decay` to change the rule.

    Args:
        *args: positional arguments of ``paddlenlp.trainer.Trainer``.
        group_by_length: use the length-grouped sampler for training (default True).
        mega_batch_mult: number of batches sorted together by the sampler.
        train_lengths: optional per-example lengths of ``train_dataset`` (else read from ``input_ids``).
        eval_logits_only: keep only the first model output (the logits) as predictions in evaluation.
        evaluate_at_end: also evaluate and checkpoint after the last step (see :class:`FinalEvaluationCallback`).
        optimizer_name: ``adamw`` (Paddle's AdamW, global gradient-norm clipping at
            ``args.max_grad_norm``) or ``bertadam`` (:class:`~paddle_binbert.train.BertAdam`: the
            releases' optimizer, no bias correction, eps 1e-6, per-tensor clipping at ``max_grad_norm``).
        calibration_batches: before training from scratch, initialise the data-initialised
            quantizers (BiT elastic, LSQ) from this many random training batches
            (:func:`~paddle_binbert.quant.calibration.calibrate`); 0: from the first training batch.
        clip_lr: peak learning rate of the quantizer parameters (BiT's alpha/beta, LSQ steps, clip
            values; quantizers.md: ``--clip_lr``, default 1e-4 in the scripts); they follow the same
            warmup/decay schedule. None: the model's learning rate for every parameter.
        **kwargs: keyword arguments of ``paddlenlp.trainer.Trainer``.
    """

    def __init__(
        self,
        *args: Any,
        group_by_length: bool = True,
        mega_batch_mult: int = 50,
        train_lengths: Optional[list] = None,
        eval_logits_only: bool = True,
        evaluate_at_end: bool = True,
        clip_lr: Optional[float] = None,
        calibration_batches: int = 8,
        optimizer_name: str = "adamw",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if optimizer_name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer_name!r}; valid: {', '.join(OPTIMIZERS)}")
        self.optimizer_name = optimizer_name
        if calibration_batches < 0:
            raise ValueError(f"calibration_batches must be >= 0, got {calibration_batches}")
        self.calibration_batches = int(calibration_batches)
        if clip_lr is not None and clip_lr <= 0:
            raise ValueError(f"clip_lr must be positive, got {clip_lr}")
        self.clip_lr = clip_lr
        stable_parameter_names(self.model)
        self.eval_logits_only = eval_logits_only
        if evaluate_at_end:
            self.add_callback(FinalEvaluationCallback())
        self.add_callback(LearningCurveCallback(os.path.join(self.args.output_dir, CURVE_FILE)))
        self.group_by_length = group_by_length
        self.mega_batch_mult = mega_batch_mult
        self.train_lengths = train_lengths

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """PaddleNLP's ``train`` in a fresh :func:`paddle.utils.unique_name.guard`, so that the optimizer's
        accumulators are named ``<structured name>_moment1_0`` (see :func:`stable_parameter_names`)
        however many optimizers the process created before (a chain's earlier stages), and a resumed
        run finds them in the checkpoint."""
        resuming = bool(kwargs.get("resume_from_checkpoint") or (args and args[0]))
        if not resuming:
            self.calibrate_quantizers()
        with paddle.utils.unique_name.guard():
            return super().train(*args, **kwargs)

    def calibrate_quantizers(self) -> int:
        """Initialise the model's uninitialised elastic / LSQ quantizers from ``calibration_batches``
        random training batches (seeded by ``args.seed``), logged; returns how many were set."""
        if self.calibration_batches == 0 or self.train_dataset is None or not data_init_quantizers(self.model, True):
            return 0
        batches = calibration_batches(
            self.train_dataset,
            self.data_collator,
            self.calibration_batches,
            self.args.per_device_train_batch_size,
            seed=self.args.seed,
        )
        count = calibrate(self.model, batches)
        logger.info(
            f"initialised {count} activation quantizers from {len(batches)} random training batches "
            f"of {self.args.per_device_train_batch_size}"
        )
        return count

    def no_decay(self, name: str, param: paddle.Tensor) -> bool:
        """Whether a parameter (structured name such as ``bert.encoder.layers.0.norm1.weight``) gets no weight decay."""
        return is_no_decay_parameter(name, param)

    def decay_parameter_names(self) -> set:
        """Framework names (``param.name``) of the parameters that do get weight decay."""
        return {p.name for n, p in self.model.named_parameters() if not self.no_decay(n, p)}

    def _get_train_sampler(self) -> Optional[paddle.io.Sampler]:
        if not self.group_by_length or self.train_dataset is None:
            return super()._get_train_sampler()
        try:
            length = len(self.train_dataset)
        except TypeError:  # iterable dataset
            return super()._get_train_sampler()
        if length == 0:
            return super()._get_train_sampler()
        return LengthGroupedBatchSampler(
            self.train_dataset,
            batch_size=self.args.per_device_train_batch_size,
            lengths=self.train_lengths,
            num_replicas=max(1, self.args.dataset_world_size),
            rank=max(0, self.args.dataset_rank),
            shuffle=True,
            drop_last=self.args.dataloader_drop_last,
            seed=self.args.seed,
            mega_batch_mult=self.mega_batch_mult,
        )

    def prediction_step(
        self,
        model: paddle.nn.Layer,
        inputs: Dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: Optional[List[str]] = None,
    ) -> Tuple[Optional[paddle.Tensor], Any, Any]:
        """Base-class prediction step; with ``eval_logits_only`` (default) only the first model output is kept.

        Extra outputs (hidden states, attentions, BERT's key/value cache when ``use_cache`` is on) have
        batch-dependent lengths under dynamic padding and cannot be concatenated across batches.
        """
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        if self.eval_logits_only and isinstance(logits, (list, tuple)) and len(logits) > 0:
            logits = logits[0]
        return loss, logits, labels

    def _save_checkpoint(self, model: Any, metrics: Optional[Dict[str, float]] = None) -> None:
        super()._save_checkpoint(model, metrics=metrics)
        # PaddleNLP only rotates checkpoints when local_rank == 0, i.e. never in a plain single-process
        # run (local_rank == -1); apply save_total_limit there too (the best checkpoint is always kept).
        if self.args.local_rank == -1 and self.args.should_save:
            self._rotate_checkpoints(use_mtime=False, output_dir=self.args.output_dir)

    def parameter_groups(self) -> list:
        """The optimizer's parameter list: one group, or two when ``clip_lr`` is set.

        Paddle scales a group's ``learning_rate`` by the scheduler's current value, so the
        quantizer group gets the multiplier ``clip_lr / learning_rate`` and follows the schedule
        with peak ``clip_lr``.
        """
        named = [(n, p) for n, p in self.model.named_parameters() if not p.stop_gradient]
        if self.clip_lr is None:
            return [p for _, p in named]
        quant = [p for n, p in named if QUANTIZER_KEYWORD in n.lower()]
        rest = [p for n, p in named if QUANTIZER_KEYWORD not in n.lower()]
        groups = [{"params": rest}]
        if quant:
            groups.append({"params": quant, "learning_rate": self.clip_lr / self.args.learning_rate})
        return groups

    def create_optimizer(self, lr_scheduler: Any = None) -> paddle.optimizer.Optimizer:
        """Create the optimizer like PaddleNLP does, with :meth:`no_decay` deciding which parameters decay
        and :meth:`parameter_groups` giving quantizer parameters their own learning rate."""
        if self.optimizer is None and self.optimizer_grouped_parameters is None:
            decay_names = self.decay_parameter_names()

            def apply_decay_param_fun(param_name: str) -> bool:
                return param_name in decay_names

            max_grad_norm = self.args.max_grad_norm
            if self.optimizer_name == "bertadam":
                self.optimizer = BertAdam(
                    learning_rate=self.lr_scheduler if lr_scheduler is None else lr_scheduler,
                    parameters=self.parameter_groups(),
                    weight_decay=self.args.weight_decay,
                    max_grad_norm=max_grad_norm,
                    apply_decay_param_fun=apply_decay_param_fun,
                )
                return self.optimizer
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)
            if hasattr(optimizer_cls, "_create_master_weight") and self.args.fp16_opt_level == "O2":
                optimizer_kwargs["multi_precision"] = True
            self.optimizer = optimizer_cls(
                learning_rate=self.lr_scheduler if lr_scheduler is None else lr_scheduler,
                apply_decay_param_fun=apply_decay_param_fun,
                parameters=self.parameter_groups(),
                weight_decay=self.args.weight_decay,
                grad_clip=paddle.nn.ClipGradByGlobalNorm(max_grad_norm) if max_grad_norm > 0 else None,
                **optimizer_kwargs,
            )
            return self.optimizer
        return super().create_optimizer(lr_scheduler)


def make_training_args(
    output_dir: str,
    batch_size: int,
    learning_rate: float,
    num_train_epochs: float,
    weight_decay: float = 0.01,
    seed: int = 42,
    logging_steps: int = 50,
    save_steps: Optional[int] = None,
    eval_steps: Optional[int] = None,
    max_steps: int = -1,
    device: str = "cpu",
    warmup_ratio: float = 0.1,
    metric_for_best_model: Optional[str] = "acc",
    **extra: Any,
) -> TrainingArguments:
    """Build ``TrainingArguments`` with this project's defaults.

    Evaluation and checkpointing happen every ``eval_steps`` steps (every epoch when ``eval_steps``
    is None); ``save_steps`` defaults to ``eval_steps`` and must be a multiple of it. The best
    checkpoint by ``metric_for_best_model`` (a key of the metrics dict, without ``eval_``; None
    selects by eval loss) is reloaded at the end; at most 2 checkpoints are kept. AdamW with linear
    warmup (``warmup_ratio``) and linear decay, no VisualDL/W&B reporting, progress bar on,
    dataloader workers 0. ``extra`` overrides or adds any ``TrainingArguments`` field.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if eval_steps is not None and eval_steps < 1:
        raise ValueError(f"eval_steps must be positive or None, got {eval_steps}")
    if eval_steps is None:
        if save_steps is not None:
            raise ValueError("save_steps needs eval_steps (without eval_steps, evaluation and saving are per epoch)")
        strategy: Dict[str, Any] = {"evaluation_strategy": "epoch", "save_strategy": "epoch"}
    else:
        save_steps = eval_steps if save_steps is None else save_steps
        if save_steps < 1 or save_steps % eval_steps != 0:
            raise ValueError(
                f"save_steps ({save_steps}) must be a positive multiple of eval_steps ({eval_steps}) "
                "so that every saved checkpoint has been evaluated"
            )
        strategy = {
            "evaluation_strategy": "steps",
            "save_strategy": "steps",
            "eval_steps": eval_steps,
            "save_steps": save_steps,
        }
    greater_is_better = None
    if metric_for_best_model is None:
        metric_for_best_model, greater_is_better = "loss", False
    kwargs: Dict[str, Any] = dict(
        output_dir=output_dir,
        do_train=True,
        do_eval=True,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        num_train_epochs=num_train_epochs,
        max_steps=max_steps,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        lr_scheduler_type="linear",
        seed=seed,
        logging_steps=logging_steps,
        logging_strategy="steps",
        load_best_model_at_end=True,
        metric_for_best_model=metric_for_best_model,
        greater_is_better=greater_is_better,
        save_total_limit=2,
        disable_tqdm=False,
        report_to=["none"],
        dataloader_num_workers=0,
        device=device,
        **strategy,
    )
    kwargs.update(extra)
    return TrainingArguments(**kwargs)


def glue_compute_metrics(task_name: str) -> Callable[[EvalPrediction], Dict[str, float]]:
    """``compute_metrics`` function for the Trainer: EvalPrediction (logits, labels) -> GLUE metrics of the task."""

    def compute_metrics(prediction: EvalPrediction) -> Dict[str, float]:
        logits = prediction.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        labels = prediction.label_ids
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        return compute_glue_metrics(task_name, logits, labels)

    return compute_metrics


def get_last_checkpoint(output_dir: str) -> Optional[str]:
    """Path of the newest ``checkpoint-N`` folder in ``output_dir`` (None if there is none or no folder)."""
    if not os.path.isdir(output_dir):
        return None
    return _paddlenlp_last_checkpoint(output_dir)


RESULTS_FILE = "results.json"


def previous_run_files(output_dir: str) -> List[str]:
    """The ``checkpoint-N`` folders, ``results.json`` and, for distillation chains, the ``stage<i>_*``
    folders and ``chain.json`` a previous run left in ``output_dir``."""
    if not os.path.isdir(output_dir):
        return []
    found = sorted(
        d
        for d in os.listdir(output_dir)
        if d.startswith("checkpoint-") or (d.startswith("stage") and os.path.isdir(os.path.join(output_dir, d)))
    )
    for name in (RESULTS_FILE, "chain.json", CURVE_FILE):
        if os.path.isfile(os.path.join(output_dir, name)):
            found.append(name)
    return found


def check_output_dir(output_dir: str, resume: bool, overwrite: bool) -> Optional[str]:
    """Create ``output_dir`` if needed; return an error message (for ``parser.error``) when it is not
    a writable folder or holds a previous run and neither ``resume`` nor ``overwrite`` is set."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir {output_dir} exists and is not a folder"
    previous = previous_run_files(output_dir)
    if previous and not (resume or overwrite):
        return (
            f"--output_dir {output_dir} already holds a run ({', '.join(previous[:3])}); "
            "pass --resume to continue it or --overwrite_output_dir to start over"
        )
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as err:
        return f"cannot create --output_dir {output_dir}: {err}"
    if not os.access(output_dir, os.W_OK):
        return f"--output_dir {output_dir} is not writable"
    return None


def clear_previous_run(output_dir: str) -> None:
    """Delete the checkpoints and ``results.json`` of a previous run (``--overwrite_output_dir``)."""
    for name in previous_run_files(output_dir):
        path = os.path.join(output_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def write_results(output_dir: str, results: Dict[str, Any]) -> str:
    """Write ``results.json`` atomically (temporary file + rename) and return its path."""
    return write_json_atomic(os.path.join(output_dir, RESULTS_FILE), results)
