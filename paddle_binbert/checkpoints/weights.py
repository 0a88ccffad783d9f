"""Build the model a config describes and load one weight file into it, whatever its key names.

The one place where a weight file becomes a model: bare state dicts (``.pdparams``,
``.safetensors``, ``.bin``), the weights of Hugging Face folders and of quantized / split /
half-width PaddleNLP folders all go through :func:`load_weights_file`: read
(:func:`~paddle_binbert.checkpoints.files.read_state_dict`), rename Hugging Face names
(:func:`~paddle_binbert.checkpoints.keys.hf_to_paddle_state_dict`) or map a BiT / BinaryBERT
quantized checkpoint (:mod:`paddle_binbert.checkpoints.reference`), fit prefixes and heads
(:func:`~paddle_binbert.checkpoints.keys.adapt_to_model`), then load strictly.
"""

from __future__ import annotations

import copy
import logging
from typing import Optional, Type

import paddle.nn as nn
from paddlenlp.transformers import BertConfig

from ..models.build import build_model
from ..models.quantize import QUANT_CONFIG_KEY
from .files import read_state_dict
from .keys import adapt_to_model, classifier_labels, detect_layout, hf_to_paddle_state_dict
from .reference import ReferenceQuantError, convert_reference_state, is_reference_quant_state, reference_recipe
from .strict import load_state_strict
from .tasks import task_of_class

logger = logging.getLogger(__name__)

__all__ = ["load_weights_file"]


def load_weights_file(
    weights: str,
    cls: Type[nn.Layer],
    config: BertConfig,
    num_labels: Optional[int] = None,
    strict: bool = True,
    source: Optional[str] = None,
    allow_approximate: bool = False,
) -> nn.Layer:
    """Build ``cls`` from ``config`` (:func:`~paddle_binbert.models.build.build_model`: quantized,
    split, half-width layouts included) and load the weight file ``weights`` into it (eval mode).

    Args:
        weights: the weight file (PaddleNLP or Hugging Face names, any wrapper / ``bert.`` prefix).
        cls: a PaddleNLP BERT class (``BertModel``, ``BertForSequenceClassification``,
            ``BertForQuestionAnswering`` or a subclass).
        config: the architecture; not modified (a copy is adapted).
        num_labels: classes of a sequence-classification head; default: the classifier's shape in
            the file (``config.num_labels`` when it has none).
        strict: when False, missing keys keep their initial values and unexpected keys are ignored
            (a warning lists them).
        source: the checkpoint named in messages (default: ``weights``).
        allow_approximate: see :func:`~paddle_binbert.checkpoints.load_checkpoint`.

    Raises:
        CheckpointError: unreadable file, or (``strict``) missing / unexpected / wrongly shaped keys.
        ReferenceQuantError: a BiT / BinaryBERT quantizer without exact counterpart (keys listed).
    """
    source = source or weights
    task = task_of_class(cls)
    state = read_state_dict(weights)
    layout = detect_layout(state)
    config = copy.deepcopy(config)
    reference = None
    if layout == "hf" and is_reference_quant_state(state):
        reference = reference_recipe(state, config)
        setattr(config, QUANT_CONFIG_KEY, reference.quant_config().to_dict())
        logger.info(
            "%s: %s quantized checkpoint, loaded as %s", source, reference.family, reference.quant_config().name
        )
    if task == "sequence_classification":
        wanted = num_labels if num_labels is not None else classifier_labels(state, layout)
        if wanted is not None and wanted != config.num_labels:
            if num_labels is None:
                logger.info("%s: classifier has %d outputs; setting num_labels=%d", source, wanted, wanted)
            config.num_labels = wanted
    model = build_model(cls, config)
    if reference is not None:
        try:
            state = convert_reference_state(state, model, reference, task, allow_approximate)
        except ReferenceQuantError as err:
            raise ReferenceQuantError(f"{source}: {err}") from None
    elif layout == "hf":
        state = hf_to_paddle_state_dict(state, task)
    state = adapt_to_model(state, model, task, source)
    if strict:
        load_state_strict(model, state, source)
    else:
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            logger.warning("%s: keeping initial values of %s; ignoring %s", source, missing, unexpected)
        load_state_strict(model, {k: state.get(k, own[k]) for k in own}, source)
    model.eval()
    return model
