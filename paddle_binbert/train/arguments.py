"""The settings of a training run as dataclasses: what the front ends turn their flags into.

The command lines (``examples/run_glue.py``, ``examples/run_squad.py``, ``examples/task_distill.py``,
``examples/squad_distill.py``, ``paddle-binbert distill``; the BiBERT release's flags such as
``--bi --pred_distill --intermediate_distill --query_distill --key_distill --value_distill``) are
parsed by argparse in their front ends (:mod:`paddle_binbert.distill.cli`,
:mod:`paddle_binbert.train.cli`), which build one of these
dataclasses with :meth:`RunArguments.from_flags`; every library function takes the dataclass.
Field names are the flag names (``--batch_size`` -> ``batch_size``).

* :class:`RunArguments`: the flags every training front end shares (output folder, schedule,
  seed, data limits, device, resume) and the LengthDrop flags;
* :class:`SquadDataArguments`: the SQuAD files, windows and decoding;
* :class:`FinetuneArguments` / :class:`SquadFinetuneArguments`: teacher fine-tuning (GLUE / SQuAD);
* :class:`DistillArguments` / :class:`SquadDistillArguments`: distillation (GLUE / SQuAD).

Validation functions raise :class:`FlagError` (a ValueError naming the flag); a front end turns it
into ``parser.error`` (usage and the message on stderr, exit status 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ..length_adaptive.lengthdrop import LengthDropConfig

__all__ = [
    "Arguments",
    "DistillArguments",
    "FinetuneArguments",
    "FlagError",
    "RunArguments",
    "SquadDataArguments",
    "SquadDistillArguments",
    "SquadFinetuneArguments",
    "SquadRunArguments",
]

_LENGTH_DROP = LengthDropConfig()


class FlagError(ValueError):
    """A bad command-line value (the message names the flag); front ends report it with ``parser.error``."""


class Arguments:
    """Base of the settings dataclasses: built from parsed flags, recorded as a dict."""

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any]) -> Any:
        """The dataclass of parsed flags (``vars(namespace)``); a flag the dataclass has no field for
        is a programming error (TypeError naming it), fields without a flag keep their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flags) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field for the flags {unknown}")
        return cls(**dict(flags))

    def flags(self) -> Dict[str, Any]:
        """Every field and its value (shallow), as ``results.json`` records the run's flags (``args``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class RunArguments(Arguments):
    """The flags shared by every training front end (their meaning: ``--help`` of any of them).

    ``batch_size``, ``learning_rate``, ``num_train_epochs`` and ``max_seq_length`` may be None until
    the task / method defaults are filled in (distillation, :mod:`paddle_binbert.train.defaults`)."""

    output_dir: str = ""
    max_seq_length: Optional[int] = None
    batch_size: Optional[int] = None
    learning_rate: Optional[float] = None
    num_train_epochs: Optional[float] = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    logging_steps: int = 50
    eval_steps: Optional[int] = None
    save_steps: Optional[int] = None
    max_steps: int = -1
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    device: str = "cpu"
    resume: bool = False
    overwrite_output_dir: bool = False
    # LengthDrop (Dynamic-TinyBERT), paddle_binbert.length_adaptive.cli
    length_adaptive: bool = False
    num_sandwich: int = _LENGTH_DROP.num_sandwich
    length_drop_ratio_bound: float = _LENGTH_DROP.length_drop_ratio_bound
    layer_dropout_prob: float = _LENGTH_DROP.layer_dropout_prob

    def length_drop_config(self) -> Optional[LengthDropConfig]:
        """The run's :class:`~paddle_binbert.length_adaptive.lengthdrop.LengthDropConfig`, or None
        without ``--length_adaptive``."""
        if not self.length_adaptive:
            return None
        return LengthDropConfig(
            num_sandwich=self.num_sandwich,
            length_drop_ratio_bound=self.length_drop_ratio_bound,
            layer_dropout_prob=self.layer_dropout_prob,
        )


@dataclass
class SquadDataArguments:
    """SQuAD v1.1 files, windows (``[CLS] question [SEP] context-window [SEP]``) and span decoding."""

    train_file: Optional[str] = None
    predict_file: Optional[str] = None
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30


@dataclass
class SquadRunArguments(SquadDataArguments, RunArguments):
    """A SQuAD training run: the shared flags plus the SQuAD ones."""


@dataclass
class FinetuneArguments(RunArguments):
    """GLUE teacher fine-tuning (``examples/run_glue.py``)."""

    model_name_or_path: str = "minilm"
    task_name: str = ""
    data_dir: str = ""


@dataclass
class SquadFinetuneArguments(SquadRunArguments):
    """SQuAD teacher fine-tuning (``examples/run_squad.py``)."""

    model_name_or_path: str = "minilm"


@dataclass
class DistillArguments(RunArguments):
    """GLUE distillation (``examples/task_distill.py``; the BiBERT release's flags).

    Besides the flags: ``quant_overrides`` / ``loss_overrides`` (the ``quant:`` / ``loss:`` sections
    of ``--config``) and ``chain`` (the stages of a multi-stage run, set by validation; None for
    one stage)."""

    model_type: str = "bert"
    student_model_name_or_path: Optional[str] = None
    teacher_model_type: str = "bert"
    teacher_path: str = ""
    model_config: Optional[str] = None
    task_name: str = ""
    data_dir: Optional[str] = None
    aug_train: bool = False
    method: Optional[str] = None
    config: Optional[str] = None
    bi: bool = False
    pred_distill: bool = False
    intermediate_distill: bool = False
    att_distill: bool = False
    query_distill: bool = False
    key_distill: bool = False
    value_distill: bool = False
    temperature: float = 1.0
    distill_chain: Optional[str] = None
    split_budget_mb: Optional[float] = None
    half_width: bool = False
    half_width_importance: str = "taylor"
    half_width_batches: int = 8
    clip_lr: float = 1e-4
    optimizer: Optional[str] = None
    calibration_batches: int = 8
    no_group_by_length: bool = False
    quant_overrides: Dict[str, Any] = field(default_factory=dict)
    loss_overrides: Dict[str, Any] = field(default_factory=dict)
    chain: Optional[List[Any]] = None


@dataclass
class SquadDistillArguments(SquadRunArguments, DistillArguments):
    """SQuAD distillation (``examples/squad_distill.py``, ``task_distill.py --task_name squad``):
    the distillation flags plus the SQuAD ones."""
