"""Drop-and-Restore forward: equivalence with the plain model, token selection, restore."""

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

from paddle_binbert import quantize_model
from paddle_binbert.length_adaptive import check_length_config, length_adaptive_forward
from paddle_binbert.length_adaptive.drop_restore import restore_tokens
from tests.tiny import tiny_bert_config

N = 12


def batch():
    paddle.seed(7)
    ids = paddle.randint(1, 99, [3, N])
    mask = np.ones([3, N], dtype="int64")
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    mask = paddle.to_tensor(mask)
    ids = ids * mask
    types = paddle.zeros_like(ids)
    types[0, 6:] = 1
    return ids, types, mask


def build(cls, preset):
    paddle.seed(0)
    model = cls(tiny_bert_config())
    if preset is not None:
        quantize_model(model, preset)
    model.eval()
    return model


def outputs(model, out):
    if isinstance(model, BertForSequenceClassification):
        return [out.logits]
    if isinstance(model, BertForQuestionAnswering):
        return [out.start_logits, out.end_logits]
    return [out.sequence_output, out.pooled_output]


@pytest.mark.parametrize("preset", [None, "bibert", "bit", "binarybert"])
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering, BertModel])
@pytest.mark.parametrize("config", [None, (N, N), (N + 5, N)])
def test_full_length_equals_plain_model(cls, preset, config):
    model = build(cls, preset)
    ids, types, mask = batch()
    ref = model(ids, token_type_ids=types, attention_mask=mask)
    ref = [ref] if isinstance(ref, paddle.Tensor) else list(ref)[:2]
    got = outputs(model, length_adaptive_forward(model, ids, types, mask, config))
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


def test_mask_from_pad_id_and_layerdrop_shapes():
    model = build(BertForSequenceClassification, None)
    ids, types, mask = batch()
    ref = model(ids, token_type_ids=types, attention_mask=mask)
    np.testing.assert_allclose(length_adaptive_forward(model, ids, types).logits.numpy(), ref.numpy(), atol=1e-6)
    out = length_adaptive_forward(model, ids, types, mask, (6, 4), layer_skip=[True, False])
    assert out.lengths == [N, 4] and out.logits.shape == [3, 3]
    out = length_adaptive_forward(model, ids, types, mask, (6, 4), layer_skip=[True, True])
    assert out.lengths == [N, N] and out.kept_positions == []


def _numpy_significance(probs, valid):
    """sum over heads and real queries of the probability each key receives."""
    return (probs * valid[:, None, :, None]).sum(axis=(1, 2))


def test_dropped_tokens_are_least_significant():
    model = build(BertForSequenceClassification, None)
    ids, types, mask = batch()
    ref = model(ids, token_type_ids=types, attention_mask=mask, output_attentions=True, return_dict=True)
    probs = ref.attentions[0].numpy()
    valid = mask.numpy().astype(bool)
    keep = 5
    out = length_adaptive_forward(model, ids, types, mask, (keep, keep))
    kept = out.kept_positions[0].numpy()
    sig = _numpy_significance(probs, valid.astype("float32"))
    for b in range(3):
        real = np.flatnonzero(valid[b])
        order = [0] + [j for j in np.argsort(-sig[b], kind="stable") if j != 0 and valid[b, j]]
        order += [j for j in range(N) if not valid[b, j]]  # padding last, earliest first
        assert sorted(order[:keep]) == kept[b].tolist()
        # every dropped real token is less significant than every kept one (besides [CLS])
        dropped = [j for j in real if j not in kept[b]]
        if dropped:
            assert max(sig[b, dropped]) <= min(sig[b, [j for j in kept[b] if j != 0]])
    # row 2 has 3 real tokens: they are kept, then the earliest padding
    assert kept[2].tolist() == [0, 1, 2, 3, 4]
    # second layer: a subset of the first, [CLS] first
    second = out.kept_positions[1].numpy()
    assert all(set(second[b]) <= set(kept[b]) and second[b][0] == 0 for b in range(3))


@pytest.mark.parametrize("preset", ["bibert", "bit"])
def test_quantized_selection_keeps_cls_and_real_tokens(preset):
    model = build(BertForSequenceClassification, preset)
    ids, types, mask = batch()
    out = length_adaptive_forward(model, ids, types, mask, (6, 3))
    valid = mask.numpy().astype(bool)
    for layer_positions, budget in zip(out.kept_positions, (6, 3)):
        pos = layer_positions.numpy()
        assert pos.shape == (3, budget)
        for b in range(3):
            assert pos[b, 0] == 0 and np.all(np.diff(pos[b]) > 0)
            n_real = valid[b].sum()
            assert valid[b, pos[b]].sum() == min(n_real, budget)  # padding never kept over a real token


@pytest.mark.parametrize("preset", [None, "bibert", "bit", "binarybert"])
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_config_gives_the_same_outputs_whatever_the_padding(cls, preset):
    """Budgets n_i = min(l_i, n_{i-1}): a batch padded only to its longest sequence (dynamic padding)
    and the same batch padded further give the same outputs on the real tokens."""
    model = build(cls, preset)
    ids, types, mask = batch()
    ids, types, mask = ids[1:], types[1:], mask[1:]  # 7 and 3 real tokens
    runs = []
    for width in (7, N, N + 8):  # dynamic padding, max padding, more padding
        pad = max(width - N, 0)
        grown = [
            paddle.concat([t[:, :width], paddle.zeros([2, pad], dtype=t.dtype)], axis=1) for t in (ids, types, mask)
        ]
        out = length_adaptive_forward(model, *grown, length_config=(6, 3))
        assert [p.shape[1] for p in out.kept_positions] == [6, 3]
        if cls is BertForSequenceClassification:
            runs.append([out.logits.numpy()])
        else:  # span logits at the real positions
            real = mask.numpy()[:, :7].astype(bool)
            runs.append([out.start_logits.numpy()[:, :7][real], out.end_logits.numpy()[:, :7][real]])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_restore_tokens_matches_numpy():
    rng = np.random.default_rng(0)
    buffer = rng.normal(size=(2, 6, 3)).astype("float32")
    values = rng.normal(size=(2, 2, 3)).astype("float32")
    positions = np.array([[0, 4], [1, 5]])
    got = restore_tokens(paddle.to_tensor(buffer), paddle.to_tensor(positions), paddle.to_tensor(values)).numpy()
    want = buffer.copy()
    for b in range(2):
        want[b, positions[b]] = values[b]
    np.testing.assert_array_equal(got, want)


def test_restore_puts_vectors_back_at_their_positions():
    model = build(BertModel, None)
    ids, types, mask = batch()
    ref = model(ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True, return_dict=True)
    out = length_adaptive_forward(model, ids, types, mask, (N, 4), restore=True)
    seq = out.sequence_output.numpy()
    assert seq.shape == (3, N, 32)
    kept = out.kept_positions[1].numpy()
    layer1 = ref.hidden_states[1].numpy()  # layer 1 kept every token: its output is the plain model's
    for b in range(3):
        dropped = [j for j in range(N) if j not in kept[b]]
        np.testing.assert_allclose(seq[b, dropped], layer1[b, dropped], atol=1e-6)
        assert not np.allclose(seq[b, kept[b]], layer1[b, kept[b]])
    qa = build(BertForQuestionAnswering, "bibert")
    out = length_adaptive_forward(qa, ids, types, mask, (5, 3))
    assert out.start_logits.shape == [3, N] and out.end_logits.shape == [3, N]


def test_gradients_flow_through_drop_and_restore():
    model = build(BertForQuestionAnswering, "bit")
    model.train()
    ids, types, mask = batch()
    out = length_adaptive_forward(model, ids, types, mask, (6, 3))
    (out.start_logits.sum() + out.end_logits.sum()).backward()
    grad = model.bert.encoder.layers[0].linear1.weight.grad
    assert grad is not None and float(paddle.abs(grad).sum()) > 0


def test_check_length_config_errors():
    assert check_length_config(None, 2) is None
    with pytest.raises(ValueError, match="non-increasing"):
        check_length_config((3, 5), 2)
    with pytest.raises(ValueError, match="2 layers"):
        check_length_config((3,), 2)
    with pytest.raises(ValueError, match="at least 1"):
        check_length_config((3, 0), 2)
