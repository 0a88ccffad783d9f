"""Initialise the learnable activation quantizers of a model from a representative sample.

BiT's elastic binary activation (Liu et al., 2022, eq. 7) and LSQ (Esser et al., 2020) start their
scale from the activations: ``alpha0 = 2 mean|x|`` (signed), ``4 mean|x|`` (unsigned), LSQ
``s0 = 2 mean|x| / sqrt(Qp)``. The BiT release takes ``mean|x|`` from the first training batch.
With length-grouped batches (this project's default sampler) that batch holds sentences of one
length only, e.g. 32 five-token phrases, and its statistics differ from the data's: a BiT student
initialised that way stayed at chance on SST-2 (issue 23), while the same student initialised from
random batches learns. :func:`calibrate` averages ``mean|x|`` over several random batches instead.

Calibration is the explicit initialisation step: it marks each quantizer initialised (Python-side
state that the forward pass reads, plus the ``initialized`` buffer that checkpoints save). After
weights are loaded into a model with ``set_state_dict``, :func:`sync_initialized` brings the
Python-side state up to date with the loaded buffers (the project's loaders do it).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from .quantizers import DataInitQuantizer

__all__ = ["MODEL_INPUT_KEYS", "calibrate", "calibration_batches", "data_init_quantizers", "sync_initialized"]

#: Batch keys passed to the model during calibration (labels and bookkeeping fields are dropped).
MODEL_INPUT_KEYS = ("input_ids", "token_type_ids", "attention_mask", "position_ids")


def data_init_quantizers(model: nn.Layer, uninitialized_only: bool = False) -> List[DataInitQuantizer]:
    """The quantizers of ``model`` whose parameters are initialised from data (elastic, LSQ)."""
    found = [layer for layer in model.sublayers() if isinstance(layer, DataInitQuantizer)]
    if uninitialized_only:
        found = [q for q in found if not q.is_initialized]
    return found


def sync_initialized(model: nn.Layer) -> List[str]:
    """Read every data-initialised quantizer's saved ``initialized`` flag into its Python-side state (one
    read each; call after ``set_state_dict``) and return the structured names of those still uninitialised
    (their scale comes from the next batch they see)."""
    return [
        name
        for name, layer in model.named_sublayers(include_self=True)
        if isinstance(layer, DataInitQuantizer) and not layer.refresh_initialized()
    ]


def calibration_batches(
    dataset: Sequence[Any], collate_fn: Any, num_batches: int, batch_size: int, seed: int = 0
) -> List[Dict[str, Any]]:
    """``num_batches`` batches of ``batch_size`` examples drawn at random without replacement (fewer
    if the dataset is smaller), collated with ``collate_fn``: a sample of the data's length mix."""
    if num_batches < 1 or batch_size < 1:
        raise ValueError(f"num_batches and batch_size must be positive, got {num_batches} and {batch_size}")
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot calibrate on an empty dataset")
    order = np.random.RandomState(seed).permutation(n)[: num_batches * batch_size]
    return [collate_fn([dataset[int(i)] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]


def _model_inputs(batch: Mapping[str, Any]) -> Dict[str, Any]:
    inputs = {k: v for k, v in batch.items() if k in MODEL_INPUT_KEYS}
    return {k: v if isinstance(v, paddle.Tensor) else paddle.to_tensor(np.asarray(v)) for k, v in inputs.items()}


def calibrate(model: nn.Layer, batches: Iterable[Mapping[str, Any]], only_uninitialized: bool = True) -> int:
    """Set every data-initialised quantizer of ``model`` from the average ``mean|x|`` over ``batches``.

    The model runs in eval mode (no dropout) without gradients; within each forward a quantizer
    already uses the running average of the batches seen so far, so later layers see representative
    inputs. ``only_uninitialized`` (default) leaves quantizers with loaded or trained values alone.
    Returns the number of quantizers set (0 when there is nothing to do; no forward is run then).
    """
    quantizers = data_init_quantizers(model, uninitialized_only=only_uninitialized)
    if not quantizers:
        return 0
    was_training = model.training
    model.eval()
    for q in quantizers:
        q.start_calibration()
    try:
        with paddle.no_grad():
            for batch in batches:
                model(**_model_inputs(batch))
    finally:
        # a quantizer no batch reached (an unused branch) stays uninitialised: first-batch fallback
        seen = max(q.finish_calibration() for q in quantizers)
        if was_training:
            model.train()
    if not seen:
        raise ValueError("calibration saw no batch: pass at least one batch of model inputs")
    return len(quantizers)
