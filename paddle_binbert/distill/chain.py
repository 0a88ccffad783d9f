"""Multi-stage distillation as one command: BiT's multi-step chain and BinaryBERT's pipeline.

* BiT (Liu et al., NeurIPS 2022), multi-step distillation: ``FP -> W1A2 -> W1A1``, each stage's
  best student becoming the next stage's teacher (loaded with its own quantizer config) and the
  next student's initialisation (its latent FP weights, re-quantized with the next config).
  ``--distill_chain 32-32-32,1-1-2,1-1-1``.
* BinaryBERT (Bai et al., ACL 2021): ternary student, intermediate distillation at 2.5x lr, then
  prediction distillation, then ternary weight splitting (TWS) into a binary student fine-tuned
  with prediction distillation; every stage learns from the original FP teacher. Optionally
  (``--half_width``) the ternary student has half the heads and FFN neurons, and TWS brings it
  back to the full-width model's binary weight count.

A chain is a list of :class:`ChainStage`; written as ``W-E-A`` bit strings (comma list) or a
YAML list of strings or mappings with the fields of :class:`ChainStage`. Stage ``i`` runs in
``OUT/stage<i>_<label>``; a stage with ``results.json`` is skipped on a rerun, one with
checkpoints resumes, so the whole chain is resumable. The final student is copied to ``OUT`` and
``OUT/results.json`` holds every stage's results plus a summary table.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import yaml

from ..accounting import parse_bits as accounting_parse_bits
from ..io_utils import write_json_atomic
from ..quant.config import ACTIVATION_QUANTIZER_BITS, WEIGHT_QUANTIZER_BITS, QuantConfig
from ..train.arguments import DistillArguments
from ..train.output_dir import RESULTS_FILE, write_results
from .losses import LOSS_RECIPES, DistillLossConfig, loss_recipe

logger = logging.getLogger("distill_chain")

__all__ = [
    "ChainStage",
    "CHAIN_FILE",
    "binarybert_pipeline",
    "parse_bits",
    "parse_chain",
    "run_chain",
    "stage_dir_name",
    "with_bits",
]

CHAIN_FILE = "chain.json"
INITS = ("previous", "teacher", "split")
TEACHERS = ("previous", "original")
# What a finished stage leaves that the next stage or a user loads (the best model, saved by the Trainer).
_MODEL_FILES = ("config.json", "model_state.pdparams", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class ChainStage:
    """One stage of a distillation chain.

    Attributes:
        bits: ``W-E-A`` bits of the stage's student (``"1-1-2"``; 32 = full precision), applied to
            the method's preset by :func:`with_bits`; None keeps the preset's bits.
        method: the stage's method (``configs/methods/<name>.yaml``, :func:`~.recipes.get_method`); None = the run's.
        loss: a recipe name (:data:`~.losses.LOSS_RECIPES`) or a mapping of loss weights; None = the run's
            loss flags (or the method's default recipe).
        init: the student's initialisation: ``previous`` (the previous stage's student, or the
            run's student for the first stage), ``teacher`` (the run's student initialisation) or
            ``split`` (TWS of the previous, ternary, student; BinaryBERT).
        teacher: ``previous`` (the previous stage's best student; BiT) or ``original`` (the run's
            teacher; BinaryBERT).
        split_budget_mb: only with ``init: split``: adaptive splitting under this total size.
        name: a label for the stage folder and the summary.
    """

    bits: Optional[str] = None
    method: Optional[str] = None
    loss: Optional[Union[str, Dict[str, float]]] = None
    init: str = "previous"
    teacher: str = "previous"
    split_budget_mb: Optional[float] = None
    name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.bits is not None:
            self.bits = "-".join(str(b) for b in parse_bits(self.bits))
        if self.init not in INITS:
            raise ValueError(f"chain stage init={self.init!r} is invalid; valid values: {list(INITS)}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"chain stage teacher={self.teacher!r} is invalid; valid values: {list(TEACHERS)}")
        if isinstance(self.loss, str) and self.loss not in LOSS_RECIPES:
            raise ValueError(f"chain stage loss={self.loss!r} is unknown; valid recipes: {list(LOSS_RECIPES)}")
        if self.split_budget_mb is not None and self.init != "split":
            raise ValueError("split_budget_mb only applies to a stage with init: split")

    @property
    def label(self) -> str:
        """Folder label: the name, else the bits, else the method."""
        return self.name or self.bits or self.method or "stage"


def parse_bits(text: str) -> Tuple[int, int, int]:
    """``"1-1-2"`` -> ``(1, 1, 2)`` (:func:`paddle_binbert.accounting.parse_bits`), each part one of
    the bit widths a QuantConfig supports."""
    from ..quant.config import VALID_BITS

    try:
        bits = accounting_parse_bits(str(text).strip())
    except ValueError:
        bits = ()
    if len(bits) != 3 or any(b not in VALID_BITS for b in bits):
        raise ValueError(f"bits {text!r}: expected W-E-A such as 1-1-2, each of {list(VALID_BITS)}")
    return bits  # type: ignore[return-value]


def parse_chain(spec: Union[str, List[Any]]) -> List[ChainStage]:
    """A chain from ``"32-32-32,1-1-2,1-1-1"``, a YAML file path, or a list of strings / mappings.

    A YAML file holds a list, or a mapping with the list under ``distill_chain``. Errors name the
    stage (1-based) and the field.
    """
    source = "--distill_chain"
    if isinstance(spec, str):
        if spec.endswith((".yaml", ".yml")) or os.path.isfile(spec):
            if not os.path.isfile(spec):
                raise FileNotFoundError(f"--distill_chain file {spec} does not exist")
            source = spec
            with open(spec, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
            if isinstance(data, dict):
                data = data.get("distill_chain")
            if not isinstance(data, list):
                raise ValueError(f"{spec}: expected a list of stages (or distill_chain: [...])")
            spec = data
        else:
            spec = [s for s in spec.split(",") if s.strip()]
    if not spec:
        raise ValueError(f"{source}: the chain has no stage")
    valid = {f.name for f in fields(ChainStage)}
    stages = []
    for i, item in enumerate(spec, 1):
        try:
            if isinstance(item, dict):
                unknown = sorted(set(item) - valid)
                if unknown:
                    raise ValueError(f"unknown field(s) {unknown}; valid fields: {sorted(valid)}")
                stages.append(ChainStage(**item))
            else:
                stages.append(ChainStage(bits=str(item)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}, stage {i}: {err}") from None
    return stages


def binarybert_pipeline(split_budget_mb: Optional[float] = None) -> List[ChainStage]:
    """BinaryBERT's recipe (splitting.md): ternary intermediate (lr x 2.5), ternary prediction,
    TWS split + binary prediction fine-tuning; the FP teacher teaches every stage.

    With ``--half_width`` the first stage's student (``init: teacher``) is halved before it is
    quantized and the split stage doubles its binary weight count back to full width
    (:mod:`paddle_binbert.splitting.half_width`; done by the front end's ``build_student``)."""
    return [
        ChainStage(
            name="ternary_intermediate",
            method="binarybert_ternary",
            loss="binarybert_stage1",
            init="teacher",
            teacher="original",
        ),
        ChainStage(
            name="ternary_prediction",
            method="binarybert_ternary",
            loss="binarybert_stage2",
            init="previous",
            teacher="original",
        ),
        ChainStage(
            name="split_binary",
            method="binarybert",
            loss="binarybert_stage2",
            init="split",
            teacher="original",
            split_budget_mb=split_budget_mb,
        ),
    ]


def _weight_family(current: str, bits: int) -> str:
    if bits == 32:
        return "none"
    if bits in (WEIGHT_QUANTIZER_BITS.get(current) or ()):
        return current
    return {1: "bwn", 2: "twn"}.get(bits, "uniform")


def with_bits(config: QuantConfig, bits: Optional[str]) -> QuantConfig:
    """``config`` with its W-E-A bits replaced (BiT's intermediate stages).

    Quantizer families that cannot produce the requested bits are replaced: weights by ``bwn``
    (1 bit), ``twn`` (2) or ``uniform`` (4, 8); activations by ``lsq`` (2, 4, 8 bits; BiT's own
    2-bit stage uses its elastic quantizer generalised to k bits, defined here for 1 bit only), and
    the attention variant then becomes ``quant`` (softmax, probabilities quantized like the
    activations). 32 bits switch a part off. ``hidden_act`` is kept (ReLU for BiT).
    """
    if bits is None:
        return config
    w, e, a = parse_bits(bits)
    if (w, e, a) == config.bits:
        return config
    data = config.to_dict()
    data.update(weight_bits=w, embedding_bits=e, activation_bits=a)
    data["weight_quantizer"] = _weight_family(config.weight_quantizer, w)
    data["embedding_quantizer"] = _weight_family(config.embedding_quantizer, e)
    if a == 32:
        data["activation_quantizer"] = "none"
    elif a not in ACTIVATION_QUANTIZER_BITS.get(config.activation_quantizer, ()):
        data["activation_quantizer"] = "lsq"
    if data["activation_quantizer"] != config.activation_quantizer:
        data["attention"] = "quant"
    data["name"] = f"{config.name}_{w}-{e}-{a}"
    return QuantConfig.from_dict(data, source=f"chain stage bits {bits}")


def loss_for_stage(stage: ChainStage, default: DistillLossConfig) -> DistillLossConfig:
    """The stage's loss: a named recipe, explicit weights, or ``default`` (the run's flags)."""
    if stage.loss is None:
        return default
    if isinstance(stage.loss, dict):
        try:
            return DistillLossConfig(**stage.loss)
        except TypeError as err:
            raise ValueError(f"chain stage {stage.label}: bad loss weights {stage.loss}: {err}") from None
    return loss_recipe(stage.loss, default.temperature)


def stage_dir_name(index: int, stage: ChainStage) -> str:
    """``stage<i>_<label>`` (1-based)."""
    return f"stage{index}_{stage.label}"


def chain_plan(stages: List[ChainStage], args: DistillArguments) -> Dict[str, Any]:
    """What identifies a chain run (compared on resume): the stages and the run's key flags, plus
    ``half_width`` (importance, batches) when BinaryBERT's half-width start is on (``--half_width``;
    absent otherwise, so chain folders of earlier versions still resume)."""
    keys = ("task_name", "method", "teacher_path", "student_model_name_or_path")
    plan = {"stages": [asdict(s) for s in stages], **{k: str(getattr(args, k)) for k in keys}}
    if args.half_width:
        plan["half_width"] = {"importance": args.half_width_importance, "batches": args.half_width_batches}
    return plan


#: chain-plan entries holding paths: equal when they name the same file (relative vs absolute spelling)
_PATH_KEYS = ("teacher_path", "student_model_name_or_path")


def _same_plan_value(key: str, recorded: Any, now: Any) -> bool:
    if recorded == now:
        return True
    if key in _PATH_KEYS and isinstance(recorded, str) and isinstance(now, str):
        return os.path.realpath(recorded) == os.path.realpath(now)
    return False


def check_chain_dir(output_dir: str, plan: Dict[str, Any]) -> None:
    """Refuse to resume a chain folder that was started with a different chain (naming what differs);
    the teacher and student paths count as the same when they name the same file, however spelled."""
    path = os.path.join(output_dir, CHAIN_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            previous = json.load(fh)
        differ = sorted(k for k in set(previous) | set(plan) if not _same_plan_value(k, previous.get(k), plan.get(k)))
        if differ:
            was = {k: previous.get(k) for k in differ}
            raise ValueError(
                f"{path} records a different chain (differs in {differ}; recorded {was}); pass "
                "--overwrite_output_dir to start over or use another --output_dir"
            )


def summary_table(rows: List[Dict[str, Any]], metric: str) -> str:
    """Markdown table of the stages: bits, teacher, initialisation, dev metric, size, steps, time."""
    lines = [
        f"| stage | method | bits | teacher | init | dev {metric} | size MiB | steps | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = r["student"].get(metric)
        lines.append(
            f"| {r['stage']} | {r['method']} | {r['bits']} | {r['teacher_from']} | {r['init']} | "
            f"{'' if value is None else f'{100 * value:.2f}'} | {r['student_size_mib']:.2f} | "
            f"{r['global_steps']} | {r['wall_time_seconds'] / 60:.1f} |"
        )
    return "\n".join(lines)


def _copy_model_files(src: str, dst: str) -> None:
    for name in _MODEL_FILES:
        path = os.path.join(src, name)
        if os.path.isfile(path):
            tmp = os.path.join(dst, name + ".tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, os.path.join(dst, name))


StageRunner = Callable[[DistillArguments, QuantConfig, DistillLossConfig, Any], Dict[str, Any]]
StudentBuilder = Callable[[ChainStage, QuantConfig, Optional[str], str], Tuple[Any, Optional[Dict[str, Any]]]]


def run_chain(
    args: DistillArguments,
    stages: List[ChainStage],
    base_quant: Callable[[str], QuantConfig],
    default_loss: Callable[[str], DistillLossConfig],
    build_student: StudentBuilder,
    run_stage: StageRunner,
    metric: str,
) -> Dict[str, Any]:
    """Run ``stages`` in ``args.output_dir``; return the chain's results (also in ``results.json``).

    Args:
        args: the parsed run (``output_dir``, ``teacher_path``, ``resume``, ...); each stage gets a copy
            with its own ``output_dir``, ``teacher_path``, ``method`` and ``resume``.
        base_quant: method name -> its QuantConfig (preset plus the run's ``quant:`` overrides).
        default_loss: method name -> the loss the run's flags give for that method.
        build_student: (stage, quant config, previous stage dir or None, stage dir) -> (student model,
            extra results such as the split plan).
        run_stage: (stage args, quant config, loss config, student) -> the stage's results.
        metric: the task's main metric (for the summary).
    """
    output_dir = args.output_dir
    os.makedirs(output_dir, exist_ok=True)
    plan = chain_plan(stages, args)
    check_chain_dir(output_dir, plan)
    write_json_atomic(os.path.join(output_dir, CHAIN_FILE), plan)

    rows: List[Dict[str, Any]] = []
    previous_dir: Optional[str] = None
    for index, stage in enumerate(stages, 1):
        stage_dir = os.path.join(output_dir, stage_dir_name(index, stage))
        method = stage.method or args.method
        teacher = args.teacher_path if (stage.teacher == "original" or previous_dir is None) else previous_dir
        results_path = os.path.join(stage_dir, RESULTS_FILE)
        if os.path.isfile(results_path):
            with open(results_path, encoding="utf-8") as fh:
                results = json.load(fh)
            logger.info("stage %d (%s) already done: %s", index, stage.label, results_path)
        else:
            from ..train.output_dir import get_last_checkpoint

            os.makedirs(stage_dir, exist_ok=True)
            if stage.init == "split":
                quant = None  # the split stage's config follows from the ternary student (binary_config_for)
            else:
                quant = with_bits(base_quant(method), stage.bits)
            student, extra = build_student(stage, quant, previous_dir, stage_dir)
            stage_args = dataclasses.replace(
                args,
                output_dir=stage_dir,
                teacher_path=teacher,
                method=method,
                resume=get_last_checkpoint(stage_dir) is not None,
                overwrite_output_dir=False,
            )
            loss = loss_for_stage(stage, default_loss(method))
            logger.info(
                "chain stage %d/%d %s: method %s, teacher %s, init %s%s",
                index,
                len(stages),
                stage.label,
                method,
                teacher,
                stage.init,
                " (resuming)" if stage_args.resume else "",
            )
            results = run_stage(stage_args, quant, loss, student)
            results.update(extra or {})
            results["stage"] = stage.label
            results["teacher_from"] = "previous stage" if teacher != args.teacher_path else "teacher"
            results["init"] = stage.init
            write_results(stage_dir, results)
        results.setdefault("stage", stage.label)
        rows.append(results)
        previous_dir = stage_dir

    table = summary_table(rows, metric)
    final = rows[-1]
    _copy_model_files(previous_dir, output_dir)
    chain_results = {
        **{k: v for k, v in final.items() if k not in ("args",)},
        "chain": rows,
        "final_stage_dir": previous_dir,
        "summary": table,
        "wall_time_seconds": sum(r.get("wall_time_seconds", 0.0) for r in rows),
        "global_steps": sum(r.get("global_steps", 0) for r in rows),
    }
    write_results(output_dir, chain_results)
    print(f"distillation chain ({len(rows)} stages):\n{table}", flush=True)
    return chain_results
