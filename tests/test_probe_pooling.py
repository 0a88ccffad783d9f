"""benchmarks/probe_pooling.py: the pooled features it probes and the cross-validated probes."""

from pathlib import Path

import numpy as np
import paddle
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert.data.glue import GlueExample, convert_examples_to_features
from tests.tiny import load_script, save_tiny_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_probes_score_informative_features_high_and_noise_low():
    probe = load_script("benchmarks/probe_pooling.py", "probe_pooling").probe
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    signal = np.stack([y + 0.1 * rng.normal(size=200), rng.normal(size=200)], axis=1)
    assert probe(signal, y, regression=True) > 0.95
    assert abs(probe(rng.normal(size=(200, 2)), y, regression=True)) < 0.3
    labels = (y > 0).astype(int)
    assert probe(signal, labels, regression=False) > 0.9
    assert probe(rng.normal(size=(200, 2)), labels, regression=False) < 0.7


def test_encode_pools_cls_and_the_mean_over_real_tokens(tmp_path):
    encode = load_script("benchmarks/probe_pooling.py", "probe_pooling").encode
    model = save_tiny_checkpoint(tmp_path / "m", FIXTURES / "vocab.txt", BertForSequenceClassification, num_labels=2)
    model.eval()
    tok = BertTokenizer.from_pretrained(str(tmp_path / "m"))
    texts = ["a good film", "bad", "not a good film at all"]
    examples = [GlueExample(f"dev-{i}", text, None, 0) for i, text in enumerate(texts)]
    features = convert_examples_to_features(examples, tok, 16, "SST-2")
    out = encode(model, tok, features, batch=2)  # two batches, padded differently
    assert out["cls"].shape == out["mean"].shape == (3, 32) and out["head"].shape == (3, 2)
    for i, text in enumerate(texts):  # each sentence alone: no padding at all
        enc = tok(text, max_length=16, truncation=True)
        with paddle.no_grad():
            logits, hidden = model(
                paddle.to_tensor([enc["input_ids"]]),
                token_type_ids=paddle.to_tensor([enc["token_type_ids"]]),
                output_hidden_states=True,
            )[:2]
        last = hidden[-1].numpy()[0]
        np.testing.assert_allclose(out["cls"][i], last[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["mean"][i], last.mean(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["head"][i], logits.numpy()[0], rtol=1e-4, atol=1e-5)
