"""``paddle-binbert search-length`` / ``examples/search_length.py``: flags -> :class:`~.run.SearchSettings`
-> :func:`~.run.run_search`.

The flags are checked here (``parser.error`` naming the flag); what only the loaded checkpoint, the
dev file or the cache can tell is raised by the library as :class:`~.errors.SearchInputError` and
reported the same way. Prints the speed table (``--measure``) and the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, field, fields, make_dataclass
from typing import Any, Dict, List, Optional, Tuple

from ...engine.layout import parse_length_config
from ...train import run_setup
from ...train.arguments import Arguments, FlagError
from .errors import SearchInputError
from .evaluators import DEFAULT_MAX_SEQ_LENGTH, DevSetConfig
from .evolution import COSTS, EvolutionConfig
from .run import DEFAULT_TOLERANCE, MEASURE_BACKENDS, SearchSettings, run_search

__all__ = ["SearchArguments", "build_parser", "main", "settings_from_args", "validate_args"]


def _defaults(cls: type) -> Dict[str, Any]:
    """The default of every field of the dataclass ``cls`` that has one (the flags' defaults)."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


EVO, DEV, RUN = _defaults(EvolutionConfig), _defaults(DevSetConfig), _defaults(SearchSettings)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``paddle-binbert search-length`` / ``examples/search_length.py``."""
    p = argparse.ArgumentParser(
        prog="paddle-binbert search-length",
        description="Evolutionary search of per-layer token budgets (Length-Adaptive Transformer / Dynamic-TinyBERT) "
        "for a checkpoint trained with --length_adaptive: Pareto front of dev metric vs MACs / latency. "
        "GLUE classification checkpoints are scored on --data_dir, SQuAD v1.1 question answering checkpoints "
        "(--task_name squad) on --predict_file with exact match / F1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint folder (FP or quantized): a BertForSequenceClassification for a GLUE task, "
        "a BertForQuestionAnswering for --task_name squad",
    )
    p.add_argument(
        "--task_name",
        required=True,
        help="GLUE task of the checkpoint (SST-2, MRPC, ...) or 'squad' (SQuAD v1.1, needs --predict_file)",
    )
    p.add_argument("--data_dir", default=None, help="GLUE tasks: folder with the task's dev file(s)")
    p.add_argument("--output_dir", required=True, help="where the cache, Pareto tables, plot and pick go")
    p.add_argument(
        "--max_seq_length",
        type=int,
        default=None,
        help="input length: every input (GLUE example or SQuAD window) is truncated to it and the budgets are "
        f"token counts at it (each dev batch is padded to its longest input only, which gives the same "
        f"outputs); unset: {DEFAULT_MAX_SEQ_LENGTH[0]} for GLUE, {DEFAULT_MAX_SEQ_LENGTH[1]} for squad",
    )
    p.add_argument(
        "--batch_size", type=int, default=DEV["batch_size"], help="dev evaluation batch size (SQuAD: windows)"
    )
    p.add_argument(
        "--max_eval_examples",
        type=int,
        default=None,
        help="score on N dev examples only (SQuAD: N questions, with all their windows), chosen by --subset",
    )
    p.add_argument(
        "--subset",
        choices=("spread", "first"),
        default=DEV["subset"],
        help="which N examples --max_eval_examples and --measure_examples take: 'spread' = evenly spaced over "
        "the dev file (SQuAD files are ordered by article, so the first N questions share a few contexts and "
        "their lengths), 'first' = the first N",
    )
    p.add_argument(
        "--population_size",
        type=int,
        default=EVO["population_size"],
        help="size of the initial population (spread in MACs)",
    )
    p.add_argument("--evo_iter", type=int, default=EVO["evo_iter"], help="number of evolution iterations")
    p.add_argument(
        "--mutation_size", type=int, default=EVO["mutation_size"], help="mutants per iteration (from the Pareto front)"
    )
    p.add_argument("--crossover_size", type=int, default=EVO["crossover_size"], help="crossover children per iteration")
    p.add_argument(
        "--mutation_prob",
        type=float,
        default=EVO["mutation_prob"],
        help="probability of resampling each layer's budget",
    )
    p.add_argument("--min_length", type=int, default=EVO["min_length"], help="smallest budget of any layer")
    p.add_argument(
        "--min_cost_ratio", type=float, default=EVO["min_cost_ratio"], help="lower bound on MACs / full-model MACs"
    )
    p.add_argument(
        "--max_cost_ratio", type=float, default=EVO["max_cost_ratio"], help="upper bound on MACs / full-model MACs"
    )
    p.add_argument("--cost", choices=COSTS, default=EVO["cost"], help="cost of the Pareto front and the pick")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="pick: metric at least full-model metric minus this; unset: 1 point, i.e. "
        f"{DEFAULT_TOLERANCE[0]} for GLUE (metrics in [0, 1]), {DEFAULT_TOLERANCE[1]} for squad (F1 in percent)",
    )
    p.add_argument(
        "--latency_batch_size",
        type=int,
        default=RUN["latency_batch_size"],
        help="batch size of the latency measurement ([batch, max_seq_length] random inputs)",
    )
    p.add_argument(
        "--latency_repeats", type=int, default=RUN["latency_repeats"], help="timed runs per configuration (median)"
    )
    p.add_argument(
        "--seed", type=int, default=EVO["seed"], help="seed of the search (a rerun with it replays from the cache)"
    )
    p.add_argument("--overwrite", action="store_true", help="ignore and replace an existing cache in --output_dir")
    p.add_argument(
        "--measure",
        action="store_true",
        help="after the search, time the pick (or --length_config) against the full model end to end and write "
        "speed.md: GLUE tokenise -> logits, batches of 1 and 32 texts; SQuAD question + context -> sliding-window "
        "features -> start/end logits, batches of 1 and 32 questions (all windows of a batch in one forward pass)",
    )
    p.add_argument(
        "--length_config",
        default=None,
        help="skip the search and use this configuration (e.g. 64,60,52,40,32,24) with --measure and / or --evaluate",
    )
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="with --length_config: score the full model and the configuration on the dev data (all of it, or "
        "--max_eval_examples of it) and write evaluate.json, e.g. to check a pick found on a dev subset",
    )
    p.add_argument(
        "--measure_backend",
        choices=MEASURE_BACKENDS,
        default=RUN["measure_backend"],
        help="what --measure times: 'paddle' = the checkpoint as a Paddle model (FP or simulated quantization); "
        "'engine' = a binarized student (bibert / bit preset) packed into the 1-bit engine "
        "(paddle_binbert.engine), i.e. the deployed model, with the same inputs",
    )
    p.add_argument(
        "--measure_examples",
        type=int,
        default=RUN["measure_examples"],
        help="N dev examples timed by --measure (GLUE: texts, SQuAD: questions), chosen by --subset",
    )
    g = p.add_argument_group("SQuAD v1.1 (--task_name squad)")
    g.add_argument(
        "--predict_file",
        default=None,
        help="SQuAD v1.1 dev JSON (e.g. mini_dev-v1.1.json) scored with the official exact match / F1; "
        "required with --task_name squad, replaces --data_dir",
    )
    g.add_argument(
        "--doc_stride",
        type=int,
        default=DEV["doc_stride"],
        help="step, in context tokens, between the starts of the sliding windows of a long context",
    )
    g.add_argument(
        "--max_query_length", type=int, default=DEV["max_query_length"], help="questions are cut to this many tokens"
    )
    g.add_argument(
        "--n_best_size",
        type=int,
        default=DEV["n_best_size"],
        help="start/end candidates per window when decoding an answer",
    )
    g.add_argument(
        "--max_answer_length", type=int, default=DEV["max_answer_length"], help="longest predicted answer, in tokens"
    )
    return p


def _flat_fields() -> List[Tuple[str, Any, Any]]:
    """Every field of :class:`SearchSettings` (its ``dev`` and ``evolution`` replaced by the fields of
    :class:`DevSetConfig` and :class:`EvolutionConfig`), each with its default ("" when required)."""
    out = []
    for cls, nested in ((SearchSettings, ("dev", "evolution")), (DevSetConfig, ()), (EvolutionConfig, ())):
        for f in fields(cls):
            if f.name not in nested:
                out.append((f.name, f.type, field(default="" if f.default is MISSING else f.default)))
    return out


#: The flags of ``paddle-binbert search-length`` as one flat dataclass (field names = flag names,
#: defaults = the flags' defaults), derived from the library's settings so the two cannot drift;
#: :func:`validate_args` checks and completes it, :func:`settings_from_args` nests it again.
SearchArguments = make_dataclass("SearchArguments", _flat_fields(), bases=(Arguments,))
SearchArguments.__module__ = __name__
SearchArguments.__doc__ = "The flags of ``paddle-binbert search-length`` (see ``--help``), flat."


def validate_args(args: SearchArguments) -> None:
    """``FlagError`` naming the flag on a bad value or a missing file; fills the task's defaults
    (``--max_seq_length``, ``--tolerance``) and the canonical ``--task_name``, and parses ``--length_config``."""
    from ...data.glue import check_glue_files, get_task_spec
    from ...data.squad import is_squad_task
    from ...tasks.squad import check_squad_windows

    if args.measure_backend != "paddle" and not args.measure:
        raise FlagError(f"--measure_backend {args.measure_backend} only applies with --measure")
    squad = is_squad_task(args.task_name)
    if squad:
        args.task_name = "squad"
        if args.data_dir is not None:
            raise FlagError("--data_dir is for GLUE tasks: --task_name squad reads its questions from --predict_file")
        if not args.predict_file:
            raise FlagError("--task_name squad needs --predict_file (a SQuAD v1.1 dev JSON file)")
        if not os.path.isfile(args.predict_file):
            what = "is a folder, not a file" if os.path.isdir(args.predict_file) else "does not exist"
            raise FlagError(f"--predict_file {args.predict_file} {what} (expected a SQuAD v1.1 JSON file)")
    else:
        if args.predict_file is not None:
            raise FlagError(
                f"--predict_file is only used with --task_name squad; the GLUE task {args.task_name} reads --data_dir"
            )
        try:
            args.task_name = get_task_spec(args.task_name).name
        except ValueError as err:
            raise FlagError(f"{err} (or --task_name squad with --predict_file)") from None
        if args.data_dir is None:
            raise FlagError(f"--data_dir is required for the GLUE task {args.task_name}")
        try:
            check_glue_files(args.data_dir, args.task_name, list(get_task_spec(args.task_name).dev_splits[:1]))
        except (ValueError, FileNotFoundError) as err:
            raise FlagError(str(err)) from None
    if args.max_seq_length is None:
        args.max_seq_length = DEFAULT_MAX_SEQ_LENGTH[int(squad)]
    if args.tolerance is None:
        args.tolerance = DEFAULT_TOLERANCE[int(squad)]
    if not os.path.isdir(args.checkpoint):
        raise FlagError(f"--checkpoint {args.checkpoint} is not a folder")
    counts = (
        "max_seq_length",
        "batch_size",
        "population_size",
        "latency_batch_size",
        "latency_repeats",
        "min_length",
        "measure_examples",
        "max_eval_examples",
    )
    run_setup.check_positive(args, counts)
    if squad:
        check_squad_windows(args)
    for name in ("evo_iter", "mutation_size", "crossover_size"):
        if getattr(args, name) < 0:
            raise FlagError(f"--{name} must be >= 0")
    if not 0.0 <= args.mutation_prob <= 1.0:
        raise FlagError("--mutation_prob must be in [0, 1]")
    if not 0.0 <= args.min_cost_ratio <= args.max_cost_ratio:
        raise FlagError("need 0 <= --min_cost_ratio <= --max_cost_ratio")
    if args.tolerance < 0:
        raise FlagError(f"--tolerance must be >= 0, got {args.tolerance}")
    if args.min_length > args.max_seq_length:
        raise FlagError("--min_length must not exceed --max_seq_length")
    if args.length_config is not None and not (args.measure or args.evaluate):
        raise FlagError("--length_config is only used with --measure or --evaluate")
    if args.evaluate and args.length_config is None:
        raise FlagError("--evaluate needs --length_config (the search itself scores every configuration)")
    if args.length_config is not None:
        try:
            args.length_config = parse_length_config(args.length_config)
        except ValueError as err:
            raise FlagError(str(err)) from None


def settings_from_args(args: SearchArguments) -> SearchSettings:
    """The :class:`SearchSettings` of validated arguments (:func:`validate_args`)."""

    def flags(cls: type, *nested: str) -> Dict[str, Any]:
        return {f.name: getattr(args, f.name) for f in fields(cls) if f.name not in nested}

    dev = DevSetConfig(**flags(DevSetConfig))
    evolution = EvolutionConfig(**flags(EvolutionConfig))
    return SearchSettings(dev=dev, evolution=evolution, **flags(SearchSettings, "dev", "evolution"))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the search (and optionally the speed measurement); prints the pick summary as JSON. A bad
    flag, file or checkpoint exits through ``parser.error`` naming it."""
    parser = build_parser()
    args = SearchArguments.from_flags(vars(parser.parse_args(argv)))
    try:
        validate_args(args)
        run_setup.setup_logging()
        result = run_search(settings_from_args(args))
    except (FlagError, SearchInputError) as err:
        parser.error(str(err))
    if result.speed_table is not None:
        print(result.speed_table)
    print(json.dumps(result.summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
