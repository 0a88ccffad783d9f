"""Evolutionary search of length configurations (``paddle-binbert search-length``), resumable.

Length-Adaptive Transformer (Kim & Cho, ACL 2021), section "Evolutionary search"; Dynamic-TinyBERT
(Guskin et al., 2021) ran this step with SigOpt, here it runs locally. The search looks for the
per-layer token budgets ``(l_1, ..., l_L)`` of a LengthDrop-trained checkpoint on the Pareto front of
dev score vs cost (MACs or measured latency), and picks the cheapest one within ``tolerance`` of the
full model ("within 1 point": 0.01 for GLUE metrics in [0, 1], 1.0 for SQuAD F1 in percent).

* :mod:`.evolution`: the algorithm (initial population spread in MACs, Pareto front, mutation,
  crossover, pick); no model, testable on any scoring function;
* :mod:`.evaluators`: the dev score of a configuration, one interface (:class:`DevEvaluator`) with
  a GLUE and a SQuAD adapter;
* :mod:`.cache`: ``search_cache.json``, every evaluation, rewritten atomically (a rerun with the
  same seed replays the same candidates and evaluates only the missing ones);
* :mod:`.report`: ``pareto.csv``, ``all_configs.csv``, ``pareto.md``, ``pareto.png``, ``pick.json``,
  ``speed.md``, ``evaluate.json``;
* :mod:`.run`: one run, :class:`SearchSettings` -> :func:`run_search`;
* :mod:`.cli`: the command line (flags -> :class:`SearchSettings`).
"""

from ...engine.layout import parse_length_config
from .cache import CACHE_FILE, SearchCache
from .cli import SearchArguments, build_parser, main
from .errors import SearchInputError
from .evaluators import DevEvaluator, DevSetConfig, GlueDevEvaluator, SquadDevEvaluator, load_dev_evaluator
from .evolution import (
    EvolutionConfig,
    config_key,
    crossover,
    evolutionary_search,
    initial_population,
    mutate,
    pareto_front,
    pick_config,
)
from .report import write_reports
from .run import SearchResult, SearchSettings, run_search

__all__ = [
    "CACHE_FILE",
    "DevEvaluator",
    "DevSetConfig",
    "EvolutionConfig",
    "GlueDevEvaluator",
    "SearchCache",
    "SearchInputError",
    "SearchArguments",
    "SearchResult",
    "SearchSettings",
    "SquadDevEvaluator",
    "build_parser",
    "config_key",
    "crossover",
    "evolutionary_search",
    "initial_population",
    "load_dev_evaluator",
    "main",
    "mutate",
    "parse_length_config",
    "pareto_front",
    "pick_config",
    "run_search",
    "write_reports",
]
