"""One ``search-length`` run: :class:`SearchSettings` in, files in ``output_dir`` and a summary out.

:func:`run_search` loads the checkpoint and then does one of

* the search (:func:`~.evolution.evolutionary_search` over the dev scores of :mod:`.evaluators`,
  every evaluation cached in ``search_cache.json`` by :mod:`.cache`, then the reports of :mod:`.report`);
* with ``length_config``: no search; with ``evaluate``, the dev metrics of the full model and of
  that configuration (``evaluate.json``);

and with ``measure``, times the pick (or ``length_config``) against the full model end to end
(:mod:`~paddle_binbert.length_adaptive.speed`, ``speed.md``), as a Paddle model or packed into the
1-bit engine (``measure_backend="engine"``).

Cost of a configuration: its MACs on a ``max_seq_length`` input
(:func:`~paddle_binbert.length_adaptive.costs.model_macs`) and the median latency of a
``[latency_batch_size, max_seq_length]`` forward pass on this machine
(:func:`~paddle_binbert.length_adaptive.costs.measure_latency`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ...data.sampler import dev_subset
from ...engine.layout import parse_length_config
from ..costs import measure_latency, model_macs
from ..drop_restore import check_length_config
from .cache import SearchCache
from .errors import SearchInputError
from .evaluators import DevEvaluator, DevSetConfig, load_dev_evaluator
from .evaluators import check_model as check_task_model
from .evolution import Config, EvolutionConfig, Record, config_key, evolutionary_search
from .report import write_evaluate_report, write_reports, write_speed_report

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TOLERANCE",
    "MEASURE_BACKENDS",
    "SearchResult",
    "SearchSettings",
    "evaluate_length_config",
    "measure_speed",
    "run_search",
]

#: "within 1 point" when no tolerance is given: (GLUE, SQuAD); GLUE metrics are in [0, 1], SQuAD
#: exact match / F1 in percent
DEFAULT_TOLERANCE = (0.01, 1.0)
#: what ``measure`` can time
MEASURE_BACKENDS = ("paddle", "engine")


@dataclass
class SearchSettings:
    """Everything a ``search-length`` run needs (the flags of the same names).

    Attributes:
        checkpoint: checkpoint folder (FP or quantized) with its tokenizer.
        output_dir: where the cache, reports, ``evaluate.json`` and ``speed.md`` go.
        dev: the dev data that scores a configuration.
        evolution: the search's settings.
        tolerance: the pick is the cheapest configuration scoring at least the full model's score minus
            this; None: :data:`DEFAULT_TOLERANCE` of the task.
        latency_batch_size: batch size of the latency measured per configuration.
        latency_repeats: timed runs per configuration (median).
        overwrite: ignore and replace an existing cache in ``output_dir``.
        length_config: skip the search and use this configuration (a sequence or ``"64,60,52"``) with
            ``measure`` and / or ``evaluate``.
        evaluate: score the full model and ``length_config`` on the dev data (``evaluate.json``).
        measure: time the pick (or ``length_config``) against the full model end to end (``speed.md``).
        measure_backend: ``"paddle"`` (the checkpoint as a Paddle model) or ``"engine"`` (packed into
            the 1-bit engine).
        measure_examples: dev examples timed by ``measure`` (GLUE texts, SQuAD questions), chosen by
            ``dev.subset``.
    """

    checkpoint: str
    output_dir: str
    dev: DevSetConfig
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    tolerance: Optional[float] = None
    latency_batch_size: int = 1
    latency_repeats: int = 5
    overwrite: bool = False
    length_config: Optional[Union[str, Sequence[int]]] = None
    evaluate: bool = False
    measure: bool = False
    measure_backend: str = "paddle"
    measure_examples: int = 64

    def __post_init__(self) -> None:
        if self.tolerance is None:
            self.tolerance = DEFAULT_TOLERANCE[int(self.dev.squad)]
        if isinstance(self.length_config, str):
            self.length_config = parse_length_config(self.length_config)


@dataclass
class SearchResult:
    """What :func:`run_search` returns.

    Attributes:
        summary: the pick summary (as in ``pick.json``, plus ``cache_hits``), or ``{"pick_config"}`` with
            ``length_config``; ``evaluate`` and ``speed`` entries when asked for.
        speed_table: the markdown table written to ``speed.md`` (``measure``), else None.
    """

    summary: Dict[str, Any]
    speed_table: Optional[str] = None


def run_search(settings: SearchSettings) -> SearchResult:
    """Run the search (or, with ``length_config``, score and / or time that configuration); see the
    module docstring. Raises :class:`SearchInputError` (the message names the flag) when the checkpoint
    does not fit the task, a file or the cache is unreadable or the configuration does not fit the model."""
    from paddlenlp.transformers import BertTokenizer

    from ...checkpoints import load_model
    from ...models import get_bert

    os.makedirs(settings.output_dir, exist_ok=True)
    model = load_model(settings.checkpoint)
    model.eval()
    check_task_model(model, settings.dev, settings.checkpoint)
    tokenizer = BertTokenizer.from_pretrained(settings.checkpoint)
    num_layers = len(get_bert(model).encoder.layers)

    if settings.length_config is not None:
        try:
            config = check_length_config(settings.length_config, num_layers)
        except ValueError as err:
            raise SearchInputError(str(err)) from err
        summary: Dict[str, Any] = {"pick_config": list(config)}
        if settings.evaluate:
            summary["evaluate"] = evaluate_length_config(settings, model, tokenizer, config)
    else:
        summary = _search(settings, model, tokenizer, num_layers)

    table = None
    if settings.measure:
        rows, table = measure_speed(settings, model, tokenizer, tuple(summary["pick_config"]))
        write_speed_report(settings.output_dir, table)
        summary["speed"] = rows
    return SearchResult(summary, table)


def _dev_evaluator(settings: SearchSettings, model: Any, tokenizer: Any) -> Tuple[DevEvaluator, Dict[str, Any]]:
    """``(evaluator, cache meta)`` of the dev set of ``settings``."""
    evaluator, description = load_dev_evaluator(model, tokenizer, settings.dev)
    meta: Dict[str, Any] = {
        "checkpoint": os.path.abspath(settings.checkpoint),
        "task": settings.dev.task_name,
        **description,
        "latency_batch_size": settings.latency_batch_size,
    }
    if settings.dev.max_eval_examples is not None:
        meta["subset"] = settings.dev.subset
    return evaluator, meta


def _search(settings: SearchSettings, model: Any, tokenizer: Any, num_layers: int) -> Dict[str, Any]:
    """The evolutionary search with cached evaluations, then the reports; returns the pick summary."""
    from tqdm.auto import tqdm

    evaluator, meta = _dev_evaluator(settings, model, tokenizer)
    try:
        cache = SearchCache(settings.output_dir, meta, overwrite=settings.overwrite)
    except ValueError as err:
        raise SearchInputError(str(err)) from err
    seq_length = settings.dev.max_seq_length
    hits = {"n": 0}

    def macs_of(config: Config) -> int:
        return model_macs(model, config, seq_length)

    def evaluate(config: Config) -> Record:
        cached = cache.get(config)
        if cached is not None:
            hits["n"] += 1
            bar.set_postfix(cached=hits["n"])
            return cached
        metrics = evaluator(config)
        record = {
            "config": list(config),
            "score": float(metrics[evaluator.metric]),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "macs": macs_of(config),
            "latency_ms": measure_latency(
                model, config, seq_length, settings.latency_batch_size, settings.latency_repeats
            ),
        }
        cache.put(record)
        return record

    evo = settings.evolution
    planned = 1 + evo.population_size + evo.evo_iter * (evo.mutation_size + evo.crossover_size)
    with tqdm(total=planned, desc="length search", unit="config") as bar:
        records = evolutionary_search(evaluate, macs_of, seq_length, num_layers, evo, progress=bar)
        bar.total = bar.n  # fewer candidates than planned when the space or the bounds are small
        bar.refresh()
    summary = write_reports(records, settings.output_dir, evaluator.metric, evo.cost, settings.tolerance)
    summary["cache_hits"] = hits["n"]
    logger.info("Pareto table in %s", os.path.join(settings.output_dir, "pareto.md"))
    return summary


def evaluate_length_config(settings: SearchSettings, model: Any, tokenizer: Any, config: Config) -> Dict[str, Any]:
    """Dev metrics of the full model and of ``config`` (``evaluate``), also written to ``evaluate.json``:
    the cache meta's fields, ``metric``, ``full``, ``config``, ``config_metrics`` and ``drop``
    (full minus configuration, main metric)."""
    evaluator, meta = _dev_evaluator(settings, model, tokenizer)
    result = {
        **meta,
        "metric": evaluator.metric,
        "full": {k: float(v) for k, v in evaluator(None).items()},
        "config": list(config),
        "config_metrics": {k: float(v) for k, v in evaluator(config).items()},
    }
    result["drop"] = result["full"][evaluator.metric] - result["config_metrics"][evaluator.metric]
    write_evaluate_report(settings.output_dir, result)
    logger.info(
        "%s: full %.2f, %s %.2f",
        evaluator.metric,
        result["full"][evaluator.metric],
        config_key(config),
        result["config_metrics"][evaluator.metric],
    )
    return result


def measure_speed(
    settings: SearchSettings, model: Any, tokenizer: Any, config: Config
) -> Tuple[List[Dict[str, Any]], str]:
    """``(rows, markdown table)`` of the end-to-end timing of ``config`` against the full model on
    ``settings.measure_examples`` dev examples (:mod:`~paddle_binbert.length_adaptive.speed`): GLUE
    tokenise -> logits, SQuAD question + context -> windows -> start/end logits."""
    from .. import speed

    dev = settings.dev
    forward = _engine_forward(settings, model, tokenizer) if settings.measure_backend == "engine" else None
    if dev.squad:
        examples = _squad_questions(dev.predict_file, settings.measure_examples, dev.subset)
        rows = speed.measure_squad_end_to_end(
            model,
            tokenizer,
            examples,
            config,
            dev.max_seq_length,
            dev.doc_stride,
            dev.max_query_length,
            forward=forward,
        )
    else:
        texts = _glue_texts(dev, settings.measure_examples)
        rows = speed.measure_end_to_end(model, tokenizer, texts, config, dev.max_seq_length, forward=forward)
    table = speed.speed_table(rows, config, squad=dev.squad)
    if forward is not None:
        table = f"Packed 1-bit engine ({forward.backend} backend). " + table
    return rows, table


def _engine_forward(settings: SearchSettings, model: Any, tokenizer: Any):
    """``measure_backend="engine"``: pack the checkpoint into ``output_dir/packed`` and wrap the engine
    for :mod:`~paddle_binbert.length_adaptive.speed`. The runner's ``backend`` ("native" or, without a
    compiler, "simulated") is kept on the returned function so the table says which one ran."""
    from ... import engine
    from ...export import pack_model
    from ..speed import engine_forward

    packed_dir = os.path.join(settings.output_dir, "packed")
    try:
        pack_model(model, packed_dir, tokenizer=tokenizer)
    except (ValueError, NotImplementedError) as err:
        raise SearchInputError(f"--measure_backend engine: {settings.checkpoint} cannot be packed: {err}") from err
    runner = engine.load(packed_dir)
    forward = engine_forward(runner)
    forward.backend = runner.backend
    return forward


def _glue_texts(dev: DevSetConfig, limit: int) -> List[Tuple[str, Optional[str]]]:
    """``(text_a, text_b or None)`` of ``limit`` examples of the task's first dev split."""
    from ...data.glue import get_task_spec, read_glue_examples

    split = get_task_spec(dev.task_name).dev_splits[0]
    examples = read_glue_examples(dev.data_dir, dev.task_name, split)
    return [(ex.text_a, ex.text_b) for ex in dev_subset(examples, limit, dev.subset == "spread")]


def _squad_questions(path: str, limit: int, subset: str) -> List[Any]:
    """``limit`` questions of the SQuAD file ``path``."""
    from ...data.squad import read_squad_examples

    try:
        examples = dev_subset(read_squad_examples(path), limit, subset == "spread")
    except ValueError as err:
        raise SearchInputError(f"--predict_file: {err}") from err
    if not examples:
        raise SearchInputError(f"--predict_file {path} holds no question")
    return examples
