"""The one training loop of every front end: :class:`BinBertTrainer`, PaddleNLP's ``Trainer`` with a
loss strategy and task-supplied evaluation.

What a step minimises is an objective of :mod:`paddle_binbert.train.objectives`: the task's own loss
(``TaskLoss``, teacher fine-tuning), distillation from a teacher (``DistillLoss``), or LengthDrop's
sandwich around either (``LengthDropLoss``). Evaluation is PaddleNLP's loop scored by the task's
``compute_metrics`` (GLUE: :func:`~paddle_binbert.tasks.glue.glue_compute_metrics`) or the task's own
``evaluation`` (SQuAD: :class:`~paddle_binbert.tasks.squad.SquadEvaluation`, span decoding and
EM / F1). So fine-tuning and distillation, GLUE and SQuAD, with or without LengthDrop are one class.

Checkpoints (``OUTPUT_DIR/checkpoint-N``) are written atomically: into ``OUTPUT_DIR/.partial-checkpoint-N``
first, then renamed, so a process killed while saving leaves no half-written ``checkpoint-N``.
:func:`~paddle_binbert.train.output_dir.get_last_checkpoint` skips incomplete checkpoints (of older
versions, or damaged by hand), and a resumed run accepts an ``OUTPUT_DIR`` that was moved or is
spelled differently (relative / absolute) from the one the checkpoints recorded.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

import paddle
from paddlenlp.trainer import Trainer, TrainerCallback, TrainingArguments
from paddlenlp.trainer.trainer_utils import IntervalStrategy
from paddlenlp.utils.log import logger

from ..data.sampler import LengthGroupedBatchSampler
from ..io_utils import write_json_atomic
from ..quant.calibration import calibrate, calibration_batches, data_init_quantizers
from .curves import CURVE_FILE, LearningCurveCallback
from .objectives import TaskLoss, TrainingObjective
from .optimizers import OPTIMIZERS, BertAdam
from .output_dir import (
    CHECKPOINT_PREFIX,
    LOSS_TOTALS_FILE,
    PARTIAL_PREFIX,
    TRAINER_STATE_FILE,
    fsync_dir,
    fsync_tree,
    get_last_checkpoint,
    resumed_loss_totals,
)

__all__ = [
    "NO_DECAY_KEYWORDS",
    "BinBertTrainer",
    "CheckpointPathsCallback",
    "FinalEvaluationCallback",
    "is_no_decay_parameter",
    "normalise_best_checkpoint",
    "stable_parameter_names",
]

# Parameter-name fragments (lower case) that get no weight decay: biases, LayerNorm weights
# (PaddleNLP names them ``layer_norm``/``norm1``/``norm2``), quantizer scales and clip values.
NO_DECAY_KEYWORDS = ("bias", "norm", "quantizer", "clip")
# Parameter-name fragment of the learnable quantizer parameters (elastic alpha/beta, LSQ step, clip
# value): they live in ``*_quantizer`` sublayers and get their own learning rate (``clip_lr``).
QUANTIZER_KEYWORD = "quantizer"

_log = logging.getLogger(__name__)


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


def normalise_best_checkpoint(state: Any, output_dir: str) -> None:
    """Point ``state.best_model_checkpoint`` at its folder in ``output_dir`` as spelled now.

    PaddleNLP stores the best checkpoint as a path (``runs/x/checkpoint-10``) in ``trainer_state.json``
    and later looks it up in the list of ``output_dir``'s checkpoints by string; a run moved to another
    folder, or resumed with ``--output_dir`` spelled otherwise (absolute vs relative), would crash
    (``'runs/x/checkpoint-10' is not in list``) or lose its best model. The recorded folder's name is
    looked up in ``output_dir``; when it is not there either, the best checkpoint is forgotten (the
    next evaluated checkpoint becomes the best) with a warning."""
    best = getattr(state, "best_model_checkpoint", None)
    if not best:
        return
    here = os.path.join(output_dir, os.path.basename(os.path.normpath(best)))
    if os.path.isdir(here):
        if os.path.normpath(best) != os.path.normpath(here):
            _log.info("best checkpoint recorded as %s: using %s (the run's folder as given now)", best, here)
            state.best_model_checkpoint = here
        return
    _log.warning(
        "the best checkpoint recorded in the run's state, %s, is not in %s: the next evaluated checkpoint "
        "becomes the best",
        best,
        output_dir,
    )
    state.best_model_checkpoint = None
    state.best_metric = None


class CheckpointPathsCallback(TrainerCallback):
    """Apply :func:`normalise_best_checkpoint` to the (resumed) state when training begins."""

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> Any:
        """Rewrite ``state.best_model_checkpoint`` relative to ``args.output_dir``."""
        normalise_best_checkpoint(state, args.output_dir)
        return control


class BinBertTrainer(Trainer):
    """``paddlenlp.trainer.Trainer`` for BERT fine-tuning and distillation (GLUE, SQuAD, LengthDrop) on CPU or GPU.

    Differences from the base class:

    * the loss is the ``objective``'s (:mod:`paddle_binbert.train.objectives`: ``TaskLoss`` by
      default, ``DistillLoss``, ``LengthDropLoss``) in training and in evaluation, and the parts it
      reports are logged with ``loss`` (averaged over the logging window and the data-parallel ranks);
    * :meth:`evaluate` is the task's ``evaluation`` when one is given (SQuAD's span decoding and
      EM / F1), else PaddleNLP's loop with ``compute_metrics``; :meth:`evaluate_model` evaluates
      another model (a teacher) the same way;
    * the training dataloader uses :class:`LengthGroupedBatchSampler` (shuffled, examples of
      similar length batched together, deterministic for ``args.seed``, sharded by data-parallel
      rank); pass ``group_by_length=False`` for PaddleNLP's plain random batches;
    * every evaluation adds a row to ``OUTPUT_DIR/learning_curve.csv``
      (:class:`~paddle_binbert.train.curves.LearningCurveCallback`);
    * learned activation scales are calibrated on random batches before training
      (``calibration_batches``), and ``optimizer_name`` picks AdamW or BertAdam;
    * weight decay skips every parameter for which :meth:`no_decay` is True (biases, LayerNorm,
      quantizer and clip parameters by default); override :meth:`no_decay` to change the rule;
    * checkpoints are saved atomically (staged in ``.partial-checkpoint-N``, then renamed) and rotated
      in single-process runs too; a resumed run skips incomplete checkpoints
      (:func:`~paddle_binbert.train.output_dir.get_last_checkpoint`) and accepts a moved or re-spelled ``output_dir``
      (:class:`CheckpointPathsCallback`);
    * ``train_loss`` (the training metrics and ``TrainOutput.training_loss``) is the mean training
      loss over **all** optimizer steps of the run, those before a resume included (PaddleNLP divides
      the resumed process's loss sum by every step): every checkpoint stores the loss sum of the steps
      up to it (``loss_totals.json``). For a checkpoint without that file (older versions) the steps
      before it count with the losses logged in its ``trainer_state.json`` (steps after its last log
      are left out of the mean).

    Args:
        *args: positional arguments of ``paddlenlp.trainer.Trainer``.
        objective: what training minimises (:class:`~paddle_binbert.train.objectives.TrainingObjective`;
            None: :class:`~paddle_binbert.train.objectives.TaskLoss`, the model's own loss).
        evaluation: the task's evaluation, an object with ``evaluate(trainer, eval_dataset,
            metric_key_prefix) -> metrics`` (:class:`~paddle_binbert.tasks.squad.SquadEvaluation`);
            None: PaddleNLP's evaluation loop and ``compute_metrics``.
        group_by_length: use the length-grouped sampler for training (default True).
        mega_batch_mult: number of batches sorted together by the sampler.
        train_lengths: optional per-example lengths of ``train_dataset`` (else read from ``input_ids``,
            a key of feature dicts or an attribute of feature objects).
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
        objective: Optional[TrainingObjective] = None,
        evaluation: Optional[Any] = None,
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
        self.add_callback(CheckpointPathsCallback())
        # train_loss over every step of a resumed run (see the class docstring)
        self._loss_base_sum, self._loss_base_steps, self._start_step = 0.0, 0, 0
        self._resumed = False
        self._tr_loss: Any = None
        self.add_callback(LearningCurveCallback(os.path.join(self.args.output_dir, CURVE_FILE)))
        self.group_by_length = group_by_length
        self.mega_batch_mult = mega_batch_mult
        self.train_lengths = train_lengths
        self.evaluation = evaluation
        self.objective = objective if objective is not None else TaskLoss()
        self.objective.setup(self.model, self.args.seed)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """PaddleNLP's ``train`` in a fresh :func:`paddle.utils.unique_name.guard`, so that the optimizer's
        accumulators are named ``<structured name>_moment1_0`` (see :func:`stable_parameter_names`)
        however many optimizers the process created before (a chain's earlier stages), and a resumed
        run finds them in the checkpoint."""
        if args:
            kwargs["resume_from_checkpoint"], args = args[0], args[1:]
        checkpoint = kwargs.get("resume_from_checkpoint")
        if checkpoint is True:  # PaddleNLP's "the last checkpoint": take the last complete one
            checkpoint = get_last_checkpoint(self.args.output_dir)
            if checkpoint is None:
                raise ValueError(f"no complete checkpoint to resume from in {self.args.output_dir}")
            kwargs["resume_from_checkpoint"] = checkpoint
        self._remove_partial_checkpoints()
        self._start_loss_totals(checkpoint or None)
        if not checkpoint:
            self.calibrate_quantizers()
        with paddle.utils.unique_name.guard():
            output = super().train(*args, **kwargs)
        if self._resumed and "train_loss" in (output.metrics or {}):
            output = output._replace(training_loss=output.metrics["train_loss"])
        return output

    def _remove_partial_checkpoints(self) -> None:
        """Delete the staging folders (``.partial-checkpoint-N``) a process killed while saving left."""
        folder = self.args.output_dir
        if not self.args.should_save or not os.path.isdir(folder):
            return
        for name in os.listdir(folder):
            if name.startswith(PARTIAL_PREFIX + CHECKPOINT_PREFIX):
                _log.info("removing %s, a checkpoint whose saving was interrupted", os.path.join(folder, name))
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

    def _start_loss_totals(self, checkpoint: Optional[str]) -> None:
        """Read the loss sum of the steps before ``checkpoint`` (None: a run from scratch)."""
        self._loss_base_sum, self._loss_base_steps, self._start_step = 0.0, 0, 0
        self._resumed = bool(checkpoint)
        self._tr_loss = None
        if checkpoint:
            self._loss_base_sum, self._loss_base_steps, self._start_step = resumed_loss_totals(checkpoint)

    def _maybe_log_save_evaluate(self, tr_loss: Any, *args: Any, **kwargs: Any) -> Any:
        # keep the running (not yet logged) loss sum: a checkpoint saved here records it in loss_totals.json
        self._tr_loss = tr_loss
        return super()._maybe_log_save_evaluate(tr_loss, *args, **kwargs)

    def loss_totals(self) -> Dict[str, Any]:
        """``{"loss_sum", "steps", "global_step"}``: the training losses of the run summed over its
        ``steps`` steps whose loss is known (all of them unless it resumed from an older checkpoint)."""
        pending = 0.0
        if self._tr_loss is not None:
            pending = float(self._tr_loss.item())
        local_steps = max(0, int(self.state.global_step) - self._start_step)
        return {
            "loss_sum": self._loss_base_sum + float(getattr(self, "_total_loss_scalar", 0.0)) + pending,
            "steps": self._loss_base_steps + local_steps,
            "global_step": int(self.state.global_step),
        }

    def mean_over_ranks(self, values: Dict[str, float]) -> Dict[str, float]:
        """``values`` (per-rank training statistics, e.g. the loss terms of the logging window)
        averaged over the data-parallel ranks; unchanged in a single-process run. Every rank must
        call it with the same keys (it is reached from :meth:`log`, which all ranks run)."""
        world = int(self.args.world_size)
        if world <= 1 or not values:
            return values
        keys = sorted(values)
        tensor = paddle.to_tensor([float(values[k]) for k in keys], dtype="float64")
        paddle.distributed.all_reduce(tensor)
        return {k: float(v) / world for k, v in zip(keys, tensor.numpy().tolist())}

    def log(self, logs: Dict[str, float], **kwargs: Any) -> None:
        """PaddleNLP's ``log``, the training logs (those with ``loss``) completed with the objective's
        loss parts (:meth:`mean_over_ranks`, rounded to 6 digits); in a resumed run, ``train_loss``
        (end of training) becomes the mean over all steps of the run (see the class docstring)."""
        if "loss" in logs:
            parts = self.mean_over_ranks(self.objective.pop_logs())
            logs.update({k: round(v, 6) for k, v in parts.items()})
        if self._resumed and "train_loss" in logs:
            local_steps = max(0, int(self.state.global_step) - self._start_step)
            steps = self._loss_base_steps + local_steps
            if steps > 0:
                logs["train_loss"] = (self._loss_base_sum + float(self._total_loss_scalar)) / steps
        super().log(logs, **kwargs)

    def compute_loss(self, model: paddle.nn.Layer, inputs: Dict[str, Any], return_outputs: bool = False):
        """The objective's training loss (``model.training``) or evaluation loss; with
        ``return_outputs``, ``(loss, outputs)``, ``outputs[1:]`` the logits."""
        if not model.training:
            loss, outputs = self.objective.evaluation_loss(model, inputs)
            return (loss, outputs) if return_outputs else loss
        loss, logits = self.objective.training_loss(model, inputs)
        if not return_outputs:
            return loss
        return (loss, (loss, *logits)) if isinstance(logits, tuple) else (loss, (loss, logits))

    def evaluate(
        self,
        eval_dataset: Optional[Any] = None,
        ignore_keys: Optional[List[str]] = None,
        metric_key_prefix: str = "eval",
    ) -> Dict[str, float]:
        """Metrics of ``self.model`` on ``eval_dataset`` (default: the trainer's), keyed
        ``<metric_key_prefix>_<name>``: the task's ``evaluation`` if any, else PaddleNLP's."""
        if self.evaluation is not None:
            return self.evaluation.evaluate(self, eval_dataset, metric_key_prefix)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def evaluate_model(
        self, model: paddle.nn.Layer, metric_key_prefix: str, eval_dataset: Optional[Any] = None
    ) -> Dict[str, float]:
        """:meth:`evaluate` another model (a distillation teacher) through the same loop and metrics."""
        trained = self.model
        self.model = model
        try:
            return self.evaluate(eval_dataset=eval_dataset, metric_key_prefix=metric_key_prefix)
        finally:
            self.model = trained

    def calibrate_quantizers(self) -> int:
        """Initialise the model's uninitialised elastic / LSQ quantizers from ``calibration_batches``
        random training batches (seeded by ``args.seed``), logged; returns how many were set.

        A batch is the global one (per-device batch x data-parallel ranks): every rank computes the
        same scales, equal to those of one process with the same global batch."""
        if self.calibration_batches == 0 or self.train_dataset is None or not data_init_quantizers(self.model, True):
            return 0
        batch_size = self.args.per_device_train_batch_size * max(1, int(self.args.dataset_world_size))
        batches = calibration_batches(
            self.train_dataset, self.data_collator, self.calibration_batches, batch_size, seed=self.args.seed
        )
        count = calibrate(self.model, batches)
        logger.info(
            f"initialised {count} activation quantizers from {len(batches)} random training batches of {batch_size}"
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
        """PaddleNLP's checkpoint, written atomically in single-process runs, plus ``loss_totals.json``.

        The checkpoint is saved into ``OUTPUT_DIR/.partial-checkpoint-N/checkpoint-N`` (PaddleNLP
        saving with ``output_dir`` pointed at the staging folder), its recorded paths are set to the
        final folder, and it is renamed to ``OUTPUT_DIR/checkpoint-N`` (an incomplete checkpoint of
        the same step, left by an interrupted run, is replaced). Distributed runs save in place.
        """
        run_dir = self.args.output_dir
        name = f"{CHECKPOINT_PREFIX}{self.state.global_step}"
        final = os.path.join(run_dir, name)
        if self.args.world_size > 1 or not self.args.should_save:
            super()._save_checkpoint(model, metrics=metrics)
            if self.args.should_save:
                write_json_atomic(os.path.join(final, LOSS_TOTALS_FILE), self.loss_totals())
        else:
            staging = os.path.join(run_dir, PARTIAL_PREFIX + name)
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            self.args.output_dir = staging
            try:
                super()._save_checkpoint(model, metrics=metrics)
            finally:
                self.args.output_dir = run_dir
            staged = os.path.join(staging, name)
            if self.state.best_model_checkpoint and os.path.normpath(self.state.best_model_checkpoint) == (
                os.path.normpath(staged)
            ):
                self.state.best_model_checkpoint = final
            self.state.save_to_json(os.path.join(staged, TRAINER_STATE_FILE))
            write_json_atomic(os.path.join(staged, LOSS_TOTALS_FILE), self.loss_totals())
            fsync_tree(staged)
            if os.path.lexists(final):  # an incomplete checkpoint of this step (an interrupted run's)
                old = os.path.join(run_dir, PARTIAL_PREFIX + name + ".old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(staged, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staged, final)
            fsync_dir(run_dir)
            shutil.rmtree(staging, ignore_errors=True)
        # PaddleNLP only rotates checkpoints when local_rank == 0, i.e. never in a plain single-process
        # run (local_rank == -1); apply save_total_limit there too (the best checkpoint is always kept).
        if self.args.local_rank == -1 and self.args.should_save:
            self._rotate_checkpoints(use_mtime=False, output_dir=self.args.output_dir)

    def _sorted_checkpoints(self, output_dir: Optional[str] = None, *args: Any, **kwargs: Any) -> List[str]:
        """PaddleNLP's order of the checkpoints to rotate (oldest first, the best kept), with the best
        checkpoint looked up in ``output_dir`` as spelled now (:func:`normalise_best_checkpoint`)."""
        normalise_best_checkpoint(self.state, output_dir or self.args.output_dir)
        try:
            return super()._sorted_checkpoints(output_dir, *args, **kwargs)
        except ValueError:  # the best checkpoint is not among them: nothing to protect
            best = self.state.best_model_checkpoint
            self.state.best_model_checkpoint = None
            try:
                return super()._sorted_checkpoints(output_dir, *args, **kwargs)
            finally:
                self.state.best_model_checkpoint = best

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
