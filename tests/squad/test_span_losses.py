"""Span (SQuAD) distillation losses against independent numpy versions, and the trainer's QA paths."""

import numpy as np
import paddle
import pytest

from paddle_binbert.distill.losses import (
    DistillLossConfig,
    DistillOutputs,
    compute_distill_loss,
    mask_logits,
    span_hard_label_loss,
    span_soft_cross_entropy,
)


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_sce(zs, zt, temperature, mask):
    """mean_b sum_{l: mask=1} -softmax(zt/T) log_softmax(zs/T), softmax over unmasked positions only."""
    losses = []
    for b in range(zs.shape[0]):
        keep = mask[b].astype(bool)
        s, t = zs[b, keep] / temperature, zt[b, keep] / temperature
        p = np.exp(np_log_softmax(t))
        losses.append(-(p * np_log_softmax(s)).sum())
    return float(np.mean(losses))


def np_ce(z, y, mask):
    return float(np.mean([-np_log_softmax(z[b, mask[b].astype(bool)])[y[b]] for b in range(z.shape[0])]))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    b, length = 3, 7
    logits = {k: rng.normal(size=(b, length)).astype("float32") * 3 for k in ("ss", "se", "ts", "te")}
    mask = np.ones((b, length), dtype="int64")
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    return logits, mask


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_span_sce_matches_numpy(batch, temperature):
    z, mask = batch
    t = {k: paddle.to_tensor(v) for k, v in z.items()}
    got = span_soft_cross_entropy(t["ss"], t["se"], t["ts"], t["te"], temperature, paddle.to_tensor(mask))
    want = (np_sce(z["ss"], z["ts"], temperature, mask) + np_sce(z["se"], z["te"], temperature, mask)) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)
    # without a mask every position counts
    full = np.ones_like(mask)
    got = span_soft_cross_entropy(t["ss"], t["se"], t["ts"], t["te"], temperature)
    want = (np_sce(z["ss"], z["ts"], temperature, full) + np_sce(z["se"], z["te"], temperature, full)) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_span_losses_ignore_padding_values(batch):
    z, mask = batch
    m = paddle.to_tensor(mask)
    t = {k: paddle.to_tensor(v) for k, v in z.items()}
    noisy = {k: paddle.to_tensor(np.where(mask == 1, v, 1e3 * np.sign(v)).astype("float32")) for k, v in z.items()}
    a = span_soft_cross_entropy(t["ss"], t["se"], t["ts"], t["te"], 1.0, m)
    b = span_soft_cross_entropy(noisy["ss"], noisy["se"], noisy["ts"], noisy["te"], 1.0, m)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    masked = mask_logits(t["ss"], m).numpy()
    assert np.all(masked[mask == 0] == -1e4) and np.allclose(masked[mask == 1], z["ss"][mask == 1])


def test_span_hard_label_matches_numpy(batch):
    z, mask = batch
    ys, ye = np.array([0, 4, 2]), np.array([6, 4, 1])
    got = span_hard_label_loss(paddle.to_tensor(z["ss"]), paddle.to_tensor(z["se"]), paddle.to_tensor(ys),
                               paddle.to_tensor(ye), paddle.to_tensor(mask))
    want = (np_ce(z["ss"], ys, mask) + np_ce(z["se"], ye, mask)) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_compute_distill_loss_span_outputs_and_gradients(batch):
    z, mask = batch
    m = paddle.to_tensor(mask)
    ss = paddle.to_tensor(z["ss"], stop_gradient=False)
    se = paddle.to_tensor(z["se"], stop_gradient=False)
    ts = paddle.to_tensor(z["ts"], stop_gradient=False)
    te = paddle.to_tensor(z["te"], stop_gradient=False)
    labels = (paddle.to_tensor([0, 4, 2]), paddle.to_tensor([6, 4, 1]))
    cfg = DistillLossConfig(pred=1.0, hard_label=0.5, temperature=2.0)
    total, terms = compute_distill_loss(
        cfg, DistillOutputs(ss, end_logits=se, logit_mask=m), DistillOutputs(ts, end_logits=te, logit_mask=m), labels
    )
    pred = (np_sce(z["ss"], z["ts"], 2.0, mask) + np_sce(z["se"], z["te"], 2.0, mask)) / 2
    hard = (np_ce(z["ss"], [0, 4, 2], mask) + np_ce(z["se"], [6, 4, 1], mask)) / 2
    assert terms["pred"] == pytest.approx(pred, rel=1e-5) and terms["hard_label"] == pytest.approx(hard, rel=1e-5)
    assert float(total) == pytest.approx(pred + 0.5 * hard, rel=1e-5)
    total.backward()
    assert ss.grad is not None and se.grad is not None
    assert ts.grad is None or not np.any(ts.grad.numpy())  # the teacher is a constant
    grad = ss.grad.numpy()
    assert np.all(grad[mask == 0] == 0)  # padding gets no gradient


def test_span_output_errors(batch):
    z, _ = batch
    s = DistillOutputs(paddle.to_tensor(z["ss"]), end_logits=paddle.to_tensor(z["se"]))
    with pytest.raises(ValueError, match="span teacher"):
        compute_distill_loss(DistillLossConfig(pred=1.0), s, DistillOutputs(paddle.to_tensor(z["ts"])))
    with pytest.raises(ValueError, match="start_positions"):
        compute_distill_loss(DistillLossConfig(hard_label=1.0), s, s, labels=paddle.to_tensor([0, 1, 2]))


def test_trainer_collects_span_outputs_and_eval_loss():
    from paddlenlp.transformers import BertForQuestionAnswering

    from paddle_binbert import quantize_model
    from paddle_binbert.train.objectives import collect_outputs, pop_labels
    from tests.tiny import tiny_bert_config

    paddle.seed(0)
    model = quantize_model(BertForQuestionAnswering(tiny_bert_config()), "bibert")
    ids = paddle.to_tensor([[2, 5, 7, 9, 3], [2, 6, 3, 0, 0]])
    mask = paddle.to_tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    inputs = {"input_ids": ids, "attention_mask": mask}
    out = collect_outputs(model, inputs, DistillLossConfig(pred=1.0, hid_mse=1.0))
    assert out.end_logits is not None and out.logits.shape == [2, 5] and out.logit_mask is mask
    assert len(out.hidden_states) == 3
    labels = pop_labels({**inputs, "start_positions": ids[:, 0], "end_positions": ids[:, 1]})
    assert isinstance(labels, tuple) and len(labels) == 2
    assert pop_labels({"labels": ids[:, 0]}) is not None
