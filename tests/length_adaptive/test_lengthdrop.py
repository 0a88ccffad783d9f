"""LengthDrop sampling bounds and the sandwich loss."""

import math

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification

from paddle_binbert import quantize_model
from paddle_binbert.length_adaptive import (
    LengthDropConfig,
    inplace_distill_loss,
    sample_layer_skip,
    sample_length_config,
    sandwich_loss,
    smallest_length_config,
)
from paddle_binbert.train.objectives import task_loss_fn
from tests.tiny import tiny_bert_config


@pytest.mark.parametrize("seq_length, p", [(128, 0.2), (17, 0.2), (5, 0.5), (64, 0.0), (40, 0.9)])
def test_random_configs_respect_the_bounds(seq_length, p):
    rng = np.random.default_rng(0)
    seen_low = seen_high = False
    for _ in range(300):
        config = sample_length_config(seq_length, 6, p, rng, min_length=2)
        previous = seq_length
        for length in config:
            low = min(previous, max(2, math.ceil((1 - p) * previous - 1e-9)))
            assert low <= length <= previous
            seen_low |= length == low
            seen_high |= length == previous
            previous = length
    assert seen_high and (seen_low or p == 0.0)


def test_smallest_config():
    assert smallest_length_config(10, 3, 0.2) == (8, 7, 6)
    assert smallest_length_config(128, 6, 0.2) == (103, 83, 67, 54, 44, 36)
    assert smallest_length_config(3, 4, 0.5) == (2, 2, 2, 2)  # never below the minimum length


def test_layer_skip_probability():
    rng = np.random.default_rng(1)
    skips = np.array([sample_layer_skip(6, 0.2, rng) for _ in range(2000)])
    assert abs(skips.mean() - 0.2) < 0.02
    assert not np.any([sample_layer_skip(6, 0.0, rng) for _ in range(50)])


def test_config_validation():
    with pytest.raises(ValueError):
        LengthDropConfig(length_drop_ratio_bound=1.0)
    with pytest.raises(ValueError):
        LengthDropConfig(num_sandwich=-1)


def test_inplace_distill_loss_is_kl():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    p = np.exp(t) / np.exp(t).sum(-1, keepdims=True)
    q = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    want = (p * (np.log(p) - np.log(q))).sum(-1).mean()
    got = float(inplace_distill_loss(paddle.to_tensor(s), paddle.to_tensor(t)))
    assert abs(got - want) < 1e-5
    assert float(inplace_distill_loss(paddle.to_tensor(t), paddle.to_tensor(t))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("cls, preset", [(BertForSequenceClassification, None), (BertForQuestionAnswering, "bibert")])
def test_sandwich_loss_averages_and_backpropagates(cls, preset):
    paddle.seed(0)
    model = cls(tiny_bert_config())
    if preset:
        quantize_model(model, preset)
    model.train()
    ids = paddle.randint(1, 99, [4, 10])
    inputs = {"input_ids": ids, "token_type_ids": paddle.zeros_like(ids), "attention_mask": paddle.ones_like(ids)}
    if cls is BertForSequenceClassification:
        inputs["labels"] = paddle.to_tensor([0, 1, 2, 1])
    else:
        inputs["start_positions"] = paddle.to_tensor([1, 2, 3, 4])
        inputs["end_positions"] = paddle.to_tensor([2, 3, 4, 5])
    loss, logits, terms = sandwich_loss(
        model, inputs, task_loss_fn, LengthDropConfig(num_sandwich=2), np.random.default_rng(0)
    )
    assert terms["total"] == pytest.approx((terms["full"] + terms["smallest"] + 2 * terms["random"]) / 4, rel=1e-5)
    loss.backward()
    assert model.bert.encoder.layers[1].linear2.weight.grad is not None
