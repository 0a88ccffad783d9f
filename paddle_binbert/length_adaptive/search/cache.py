"""The search's cache of evaluated configurations (``OUTPUT_DIR/search_cache.json``), which makes a
search resumable: the search is seeded, so a rerun replays the same candidates and only evaluates
the ones missing from the cache.

File layout: ``{"meta": {...}, "entries": {"64-60-48": record, ...}}``; ``meta`` says what the scores
mean (checkpoint, task, dev data, input length, latency batch size), a record is what
:func:`~paddle_binbert.length_adaptive.search.evolution.evolutionary_search` gets from ``evaluate``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence

from ...io_utils import write_json_atomic
from .evolution import Record, config_key

__all__ = ["CACHE_FILE", "SearchCache"]

CACHE_FILE = "search_cache.json"


class SearchCache:
    """Evaluated configurations in ``OUTPUT_DIR/search_cache.json``, rewritten atomically per entry.

    ``meta`` describes what the scores mean (checkpoint, task, length, examples); a cache written with
    other ``meta`` is refused (start over with ``overwrite=True``).
    """

    def __init__(self, output_dir: str, meta: Dict[str, Any], overwrite: bool = False) -> None:
        self.path = os.path.join(output_dir, CACHE_FILE)
        self.meta = meta
        self.entries: Dict[str, Record] = {}
        if os.path.isfile(self.path) and not overwrite:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{self.path} is not a readable search cache ({err}); pass --overwrite") from err
            if data.get("meta") != meta:
                old = data.get("meta") or {}
                diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
                raise ValueError(
                    f"{self.path} was written for another search (cached vs now: {diff}); "
                    "pass --overwrite to start over or choose another --output_dir"
                )
            self.entries = data.get("entries", {})

    def __contains__(self, config: Sequence[int]) -> bool:
        return config_key(config) in self.entries

    def get(self, config: Sequence[int]) -> Optional[Record]:
        """The cached record of ``config`` or None."""
        return self.entries.get(config_key(config))

    def put(self, record: Record) -> None:
        """Store ``record`` (with a ``config`` list) and rewrite the file atomically."""
        self.entries[config_key(record["config"])] = record
        write_json_atomic(self.path, {"meta": self.meta, "entries": self.entries}, indent=1)
