"""Length-grouped random batch sampler, and :func:`evenly_spaced` subsets of a dev set.

Dynamic padding pads each batch to its longest sequence, so batches of similar lengths waste
less compute. The sampler, for every epoch:

1. shuffles all indices (seeded by ``seed + epoch``),
2. cuts them into mega-batches of ``mega_batch_mult`` global batches and sorts each mega-batch by
   length (longest first),
3. cuts the mega-batches into global batches of ``batch_size * num_replicas`` examples and
   shuffles the order of the global batches,
4. gives each rank its ``batch_size`` slice of every global batch (so ranks see batches of
   similar length at the same step).

Like ``paddle.io.DistributedBatchSampler`` (which it subclasses, so the PaddleNLP Trainer calls
``set_epoch`` on it), the index list is padded by repetition to a multiple of ``num_replicas`` so
every rank gets the same number of batches. The order depends only on ``seed`` and the epoch.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np
import paddle

__all__ = ["LengthGroupedBatchSampler", "dev_subset", "evenly_spaced", "feature_lengths"]


def evenly_spaced(items: Sequence[Any], k: Optional[int]) -> List[Any]:
    """``k`` items spread evenly over ``items``: ``items[i * n // k]`` for ``i < k`` (all if ``k`` is None
    or ``>= n``), in order. Dev files are often grouped (SQuAD by article), so their first ``k`` items
    cover only a few contexts; this subset covers the whole file."""
    n = len(items)
    if k is None or k >= n:
        return list(items)
    if k < 1:
        raise ValueError(f"the subset size must be positive, got {k}")
    return [items[i * n // k] for i in range(k)]


def dev_subset(items: Sequence[Any], k: Optional[int], spread: bool) -> List[Any]:
    """``k`` of ``items`` (all if None): :func:`evenly_spaced` with ``spread``, else the first ``k``."""
    return evenly_spaced(items, k) if spread else list(items[:k])


def feature_lengths(dataset: Sequence[Any], key: str = "input_ids") -> List[int]:
    """Length of ``item[key]`` for every item of a dataset of feature dicts, or of the attribute
    ``key`` for feature objects (SQuAD's :class:`~paddle_binbert.data.squad.SquadFeature` windows)."""
    lengths = []
    for i in range(len(dataset)):
        item = dataset[i]
        if isinstance(item, dict) and key in item:
            lengths.append(len(item[key]))
        elif not isinstance(item, dict) and hasattr(item, key):
            lengths.append(len(getattr(item, key)))
        else:
            raise ValueError(
                f"cannot infer lengths: dataset item {i} has no {key!r} (a dict key or an attribute); "
                "pass lengths= explicitly"
            )
    return lengths


class LengthGroupedBatchSampler(paddle.io.DistributedBatchSampler):
    """Batch sampler grouping examples of similar length, deterministic for a seed, DDP-aware.

    Args:
        dataset: a sized dataset; without ``lengths``, items must have ``input_ids`` (a key or an attribute).
        batch_size: per-rank batch size.
        lengths: optional per-example lengths (saves a pass over the dataset).
        num_replicas: number of data-parallel ranks (default: from ``paddle.distributed.ParallelEnv``).
        rank: this process' rank (default: from ``ParallelEnv``).
        shuffle: if False, batches are consecutive indices in file order (no grouping), for evaluation.
        drop_last: drop the last, incomplete batch.
        seed: base random seed; epoch ``e`` uses ``seed + e``.
        mega_batch_mult: number of global batches sorted together.
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        batch_size: int,
        lengths: Optional[Sequence[int]] = None,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        mega_batch_mult: int = 50,
    ) -> None:
        super().__init__(
            dataset, batch_size=batch_size, num_replicas=num_replicas, rank=rank, shuffle=shuffle, drop_last=drop_last
        )
        if len(dataset) == 0:
            raise ValueError("LengthGroupedBatchSampler needs a non-empty dataset")
        if mega_batch_mult < 1:
            raise ValueError(f"mega_batch_mult must be >= 1, got {mega_batch_mult}")
        if self.local_rank >= self.nranks:
            raise ValueError(f"rank {self.local_rank} out of range for {self.nranks} replicas")
        self.lengths = np.asarray(list(lengths) if lengths is not None else feature_lengths(dataset), dtype=np.int64)
        if self.lengths.shape[0] != len(dataset):
            raise ValueError(f"got {self.lengths.shape[0]} lengths for a dataset of {len(dataset)} items")
        self.seed = int(seed)
        self.mega_batch_mult = int(mega_batch_mult)

    def _global_batches(self, epoch: int) -> List[np.ndarray]:
        """All global batches (``batch_size * nranks`` indices each, the last may be shorter) of an epoch."""
        n = len(self.dataset)
        global_bs = self.batch_size * self.nranks
        if not self.shuffle:
            indices = np.arange(n)
        else:
            indices = np.random.RandomState((self.seed + epoch) % (2**32)).permutation(n)
        # pad by repetition so that every rank gets the same number of samples
        pad = self.total_size - n
        if pad > 0:
            indices = np.concatenate([indices, np.resize(indices, pad)])
        if not self.shuffle:
            return [indices[i : i + global_bs] for i in range(0, len(indices), global_bs)]
        rng = np.random.RandomState((self.seed + epoch + 1_000_003) % (2**32))
        mega = global_bs * self.mega_batch_mult
        batches: List[np.ndarray] = []
        for start in range(0, len(indices), mega):
            chunk = indices[start : start + mega]
            # stable sort, longest first
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + global_bs] for i in range(0, len(chunk), global_bs))
        # the incomplete global batch (if any) is the last one; keep it last so drop_last is exact
        full = [b for b in batches if len(b) == global_bs]
        partial = [b for b in batches if len(b) != global_bs]
        order = rng.permutation(len(full))
        return [full[i] for i in order] + partial

    def __iter__(self) -> Iterator[List[int]]:
        """Yield this rank's batches of the current epoch, then advance the epoch counter."""
        epoch = self.epoch
        if self.shuffle:
            # same convention as paddle.io.DistributedBatchSampler: advance unless set_epoch is called
            self.epoch += 1
        for batch in self._global_batches(epoch):
            if len(batch) == self.batch_size * self.nranks:
                local = batch[self.local_rank * self.batch_size : (self.local_rank + 1) * self.batch_size]
            else:
                # total_size is a multiple of nranks, so the last global batch splits evenly
                per_rank = len(batch) // self.nranks
                local = batch[self.local_rank * per_rank : (self.local_rank + 1) * per_rank]
                if self.drop_last or len(local) == 0:
                    continue
            yield [int(i) for i in local]

    def __len__(self) -> int:
        """Number of batches per epoch on this rank."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)
