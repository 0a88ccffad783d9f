"""Padded keys contribute nothing, in every preset (specs/attention.md, "Padding, in every variant").

A sentence gives the same eval-mode logits alone and inside a batch where it is padded up to a longer
sentence: no attention probability quantizer may turn the 0 of a masked key into an attended key
(the ``bwn`` preset's sgn(0) = +1 did).
"""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, quantize_model
from paddle_binbert.quant.config import available_presets
from tests.tiny import tiny_bert_config

LENGTHS = (12, 6, 3)  # real tokens per row of the batch; rows 1 and 2 are padded to 12


def sentences():
    """(the rows alone, each ``[1, n]``; the padded batch ``[3, 12]``, pad_token_id 0)."""
    rng = np.random.default_rng(7)
    rows = [rng.integers(1, 99, n) for n in LENGTHS]
    batch = np.zeros((len(rows), max(LENGTHS)), dtype="int64")
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    return [paddle.to_tensor(row[None, :], dtype="int64") for row in rows], paddle.to_tensor(batch)


def tiny_student(preset: str) -> BertForSequenceClassification:
    paddle.seed(1)
    model = BertForSequenceClassification(tiny_bert_config())
    quantize_model(model, QuantConfig.from_preset(preset))
    model.eval()
    return model


def assert_padding_invariant(model):
    """Logits and the real tokens' last hidden states of every row: alone == inside the padded batch."""
    alone, batch = sentences()
    with paddle.no_grad():
        model(batch)  # elastic / LSQ quantizers take their scale from the first batch: initialise first
        logits_batch = model(batch).numpy()
        hidden_batch = model.bert(batch)[0].numpy()
        for i, ids in enumerate(alone):
            n = ids.shape[1]
            np.testing.assert_allclose(logits_batch[i], model(ids).numpy()[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(hidden_batch[i, :n], model.bert(ids)[0].numpy()[0], rtol=1e-5, atol=1e-5)


def test_every_preset_is_covered():
    assert {"fp", "bibert", "bit", "bwn", "binarybert", "binarybert_ternary"} <= set(available_presets())


@pytest.mark.parametrize("preset", available_presets())
def test_sentence_alone_equals_sentence_in_padded_batch(preset):
    assert_padding_invariant(tiny_student(preset))


@pytest.mark.parametrize("preset", ["bit", "binarybert"])
def test_probability_quantizer_that_maps_zero_to_a_level(preset):
    """A trained probability quantizer may map P = 0 to a non-zero level (BiT's elastic beta < -alpha/2,
    LSQ with a negative offset): masked keys must still contribute nothing."""
    model = tiny_student(preset)
    _, batch = sentences()
    with paddle.no_grad():
        model(batch)  # initialise the data-initialised scales
        for layer in model.bert.encoder.layers:
            quant = layer.self_attn.prob_quantizer
            if hasattr(quant, "beta"):
                quant.beta.set_value(-quant.alpha.detach().reshape([1]))  # clip((0 - beta) / alpha) = 1
            else:  # LSQ has no offset: shift its input instead, P -> P + step
                step = quant.step

                def shifted(layer_, inputs, step=step):
                    return (inputs[0] + step.detach(),)

                quant.register_forward_pre_hook(shifted)
    assert_padding_invariant(model)
