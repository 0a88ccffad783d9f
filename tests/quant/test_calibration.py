"""Calibration of the data-initialised quantizers (elastic, LSQ) from several batches; their
'initialised' state (Python-side, read by forward without a device read; saved as a buffer)."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, load_model, quantize_model
from paddle_binbert.quant.calibration import calibrate, calibration_batches, data_init_quantizers, sync_initialized
from paddle_binbert.quant.quantizers import DataInitQuantizer, ElasticQuantizer, LsqQuantizer

from ..tiny import tiny_bert_config


class _Probe(nn.Layer):
    """A model whose only layer is one quantizer applied to ``input_ids`` (as floats)."""

    def __init__(self, quantizer):
        super().__init__()
        self.q = quantizer

    def forward(self, input_ids, **_):
        return self.q(input_ids.astype("float32"))


def _batches(scales):
    rng = np.random.default_rng(0)
    return [{"input_ids": paddle.to_tensor(rng.normal(0, s, size=(4, 6)).astype("float32"))} for s in scales]


@pytest.mark.parametrize(
    "quantizer, scale_of",
    [
        (lambda: ElasticQuantizer(signed=True), lambda q: q.alpha.item() / 2.0),
        (lambda: ElasticQuantizer(signed=False), lambda q: q.alpha.item() / 4.0),
        (lambda: LsqQuantizer(bits=4, signed=True), lambda q: q.step.item() * 7**0.5 / 2.0),
    ],
)
def test_calibration_averages_mean_abs_over_batches(quantizer, scale_of):
    batches = _batches([0.1, 1.0, 3.0, 10.0])
    expected = np.mean([np.abs(b["input_ids"].numpy()).mean() for b in batches])
    model = _Probe(quantizer())
    assert calibrate(model, batches) == 1
    assert model.q.is_initialized
    np.testing.assert_allclose(scale_of(model.q), expected, rtol=1e-5)
    # first-batch initialisation would have taken the first batch's statistic only
    first = _Probe(quantizer())
    first(**batches[0])
    assert abs(scale_of(first.q) - expected) > 0.5 * expected


def test_calibration_leaves_initialised_quantizers_alone_and_restores_mode():
    model = _Probe(ElasticQuantizer())
    model(**_batches([1.0])[0])
    alpha = model.q.alpha.item()
    model.train()
    assert calibrate(model, _batches([5.0, 5.0])) == 0
    assert model.q.alpha.item() == alpha
    assert calibrate(model, _batches([5.0, 5.0]), only_uninitialized=False) == 1
    assert model.q.alpha.item() > 5 * alpha
    assert model.training
    # after calibration the quantizer no longer changes with the batches it sees
    alpha = model.q.alpha.item()
    model(**_batches([100.0])[0])
    assert model.q.alpha.item() == alpha


def test_calibration_without_batches_is_an_error():
    with pytest.raises(ValueError, match="no batch"):
        calibrate(_Probe(ElasticQuantizer()), [])
    with pytest.raises(ValueError, match="empty dataset"):
        calibration_batches([], lambda b: b, 2, 2)


def test_calibration_batches_sample_without_replacement():
    batches = calibration_batches(list(range(10)), list, num_batches=3, batch_size=4, seed=1)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))
    assert batches == calibration_batches(list(range(10)), list, num_batches=3, batch_size=4, seed=1)


def test_calibrating_a_bit_student_sets_every_elastic_quantizer():
    paddle.seed(0)
    model = quantize_model(BertForSequenceClassification(tiny_bert_config()), QuantConfig.from_preset("bit"))
    quantizers = data_init_quantizers(model)
    assert quantizers and not any(q.is_initialized for q in quantizers)
    rng = np.random.default_rng(0)
    batches = [
        {
            "input_ids": paddle.to_tensor(rng.integers(1, 99, size=(3, 7))),
            "attention_mask": paddle.ones([3, 7], dtype="int64"),
            "labels": paddle.zeros([3], dtype="int64"),  # dropped: not a model input
        }
        for _ in range(3)
    ]
    assert calibrate(model, batches) == len(quantizers)
    assert all(q.is_initialized for q in quantizers)
    assert data_init_quantizers(model, uninitialized_only=True) == []


@pytest.fixture
def buffer_reads(monkeypatch):
    """Counts the reads of a quantizer's saved ``initialized`` flag (the only device read deciding it)."""
    calls = []
    real = DataInitQuantizer.refresh_initialized

    def counted(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(DataInitQuantizer, "refresh_initialized", counted)
    return calls


def test_forward_of_an_initialised_quantizer_reads_no_device_value(buffer_reads):
    model = _Probe(ElasticQuantizer())
    calibrate(model, _batches([1.0]))
    buffer_reads.clear()
    alpha = model.q.alpha.item()
    for batch in _batches([3.0, 7.0]):
        model(**batch)
    assert buffer_reads == [] and model.q.alpha.item() == alpha
    # the first-batch path reads the flag once (weights may have been loaded), then never again
    first = _Probe(ElasticQuantizer())
    for batch in _batches([1.0, 2.0, 3.0]):
        first(**batch)
    assert buffer_reads == [first.q] and first.q.initialized.item() == 1.0


def test_weights_loaded_with_set_state_dict_keep_their_scale():
    trained = _Probe(ElasticQuantizer())
    trained(**_batches([1.0])[0])
    trained.q.alpha.set_value(paddle.to_tensor([0.123]))
    fresh = _Probe(ElasticQuantizer())
    fresh.set_state_dict(trained.state_dict())  # bypasses the project's loaders (as a Trainer resume does)
    fresh(**_batches([50.0])[0])
    np.testing.assert_allclose(fresh.q.alpha.numpy(), [0.123], rtol=1e-6)
    # a state saved before any batch, loaded into a quantizer that already ran: the next batch initialises
    untouched = _Probe(ElasticQuantizer()).state_dict()
    trained.set_state_dict(untouched)
    assert sync_initialized(trained) == ["q"]
    trained(**_batches([1.0])[0])
    np.testing.assert_allclose(trained.q.alpha.numpy(), [2 * np.abs(_batches([1.0])[0]["input_ids"].numpy()).mean()])


def test_loading_a_trained_checkpoint_restores_initialised(tmp_path, buffer_reads):
    paddle.seed(0)
    model = quantize_model(BertForSequenceClassification(tiny_bert_config()), "bit")
    ids = paddle.to_tensor(np.random.default_rng(1).integers(1, 99, size=(2, 6)))
    model(ids)  # first-batch initialisation
    model.save_pretrained(str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert data_init_quantizers(loaded)
    buffer_reads.clear()
    np.testing.assert_array_equal(loaded(ids).numpy(), model.eval()(ids).numpy())
    assert buffer_reads == []  # the loader told the quantizers their scales were loaded
