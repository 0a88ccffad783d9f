"""quantize_model on tiny PaddleNLP BERTs: FP equivalence, presets, FP islands, gradients,
save/load round trip."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

from paddle_binbert import QuantConfig, load_model, quantize_model
from paddle_binbert.export.pack import pack_model
from paddle_binbert.models import (
    QuantMultiHeadAttention,
    attention_records,
    quant_config_of,
    quantization_role,
    set_recording,
)
from paddle_binbert.models.quantize import FILTER_KEY
from paddle_binbert.quant import EngineLayerNorm, QuantEmbedding, QuantLinear
from tests.tiny import tiny_bert_config

PRESETS = ["bwn", "bibert", "bit", "binarybert_ternary", "binarybert"]
CLASSES = [BertModel, BertForSequenceClassification, BertForQuestionAnswering]


def tiny_config(**kw):
    return tiny_bert_config(**kw)


def batch():
    paddle.seed(11)
    ids = paddle.randint(1, 99, [3, 12])
    ids[1, 7:] = 0  # padding (pad_token_id 0)
    ids[2, 2:] = 0
    types = paddle.zeros_like(ids)
    types[0, 6:] = 1
    return ids, types


def first_output(out):
    if isinstance(out, (tuple, list)):
        return out[0] if not isinstance(out[0], (tuple, list)) else out[0][0]
    return out


def pair(cls, preset, cfg=None):
    paddle.seed(0)
    cfg = cfg or tiny_config()
    ref = cls(cfg)
    student = cls(cfg)
    student.set_state_dict(ref.state_dict())
    quantize_model(student, preset)
    ref.eval()
    student.eval()
    return ref, student


@pytest.mark.parametrize("cls", CLASSES)
def test_fp_preset_matches_paddlenlp(cls):
    ref, student = pair(cls, "fp")
    ids, types = batch()
    a = ref(ids, token_type_ids=types)
    b = student(ids, token_type_ids=types)
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, rtol=0)


def test_fp_preset_matches_hidden_states_with_2d_attention_mask():
    ref, student = pair(BertForSequenceClassification, "fp")
    ids, _ = batch()
    mask = (ids != 0).astype("int64")
    a = ref(ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
    b = student(ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
    np.testing.assert_allclose(a.logits.numpy(), b.logits.numpy(), atol=1e-6, rtol=0)
    for x, y in zip(a.hidden_states, b.hidden_states):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForQuestionAnswering])
def test_quantized_presets_are_finite_and_differ(cls, preset):
    ref, student = pair(cls, preset)
    ids, types = batch()
    a, b = first_output(ref(ids, token_type_ids=types)), first_output(student(ids, token_type_ids=types))
    assert np.isfinite(b.numpy()).all()
    assert np.abs(a.numpy() - b.numpy()).max() > 1e-4


@pytest.mark.parametrize("preset", PRESETS)
def test_fp_islands_stay_full_precision(preset):
    _, student = pair(BertForSequenceClassification, preset)
    bert = student.bert
    assert isinstance(bert.embeddings.word_embeddings, QuantEmbedding)
    assert type(bert.embeddings.position_embeddings) is nn.Embedding
    assert type(bert.embeddings.token_type_embeddings) is nn.Embedding
    assert type(student.classifier) is nn.Linear
    assert isinstance(bert.pooler.dense, QuantLinear)
    # LayerNorms stay FP; with 1-bit activations they round as the packed engine does (EngineLayerNorm)
    norm_type = EngineLayerNorm if QuantConfig.from_preset(preset).activation_bits == 1 else nn.LayerNorm
    assert type(bert.embeddings.layer_norm) is norm_type
    for layer in bert.encoder.layers:
        for lin in (layer.self_attn.q_proj, layer.self_attn.out_proj, layer.linear1, layer.linear2):
            assert isinstance(lin, QuantLinear) and lin.weight_quantizer is not None
        assert type(layer.norm1) is norm_type and type(layer.norm2) is norm_type


def test_student_does_not_mutate_a_shared_config():
    cfg = tiny_config()
    model = BertForSequenceClassification(cfg)
    quantize_model(model, "bit")
    assert model.config.hidden_act == "relu"
    assert cfg.hidden_act == "gelu" and not hasattr(cfg, "binbert_quant_config")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(model, "bit")


def test_unsupported_model_type():
    with pytest.raises(TypeError, match="supports PaddleNLP BertModel"):
        quantize_model(nn.Linear(2, 2), "bibert")


@pytest.mark.parametrize("preset", PRESETS)
def test_training_steps_reduce_loss_and_reach_every_parameter(preset):
    paddle.seed(5)
    cfg = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = quantize_model(BertForSequenceClassification(cfg), preset)
    model.train()
    ids, types = batch()
    labels = paddle.to_tensor([0, 1, 2])
    opt = paddle.optimizer.AdamW(learning_rate=3e-3, parameters=model.parameters())
    losses, reached = [], set()
    for _ in range(12):
        loss = nn.functional.cross_entropy(model(ids, token_type_ids=types), labels)
        loss.backward()
        reached |= {n for n, p in model.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    # Every latent weight and every learnable quantizer parameter receives a gradient. (Position /
    # token-type rows of unused positions legitimately get none, so those tables are not checked.)
    # Gradients are collected over all steps: BiT's {0, alpha} attention starts all-zero on a random,
    # uniform-attention model, so V's quantizer sees a gradient only once alpha_P has moved.
    checked = [n for n, _ in model.named_parameters() if not n.startswith("bert.embeddings.") or "word_embeddings" in n]
    missing = [n for n in checked if n not in reached]
    assert missing == [], f"parameters without gradient under {preset}: {missing}"
    assert min(losses[-3:]) < losses[0], losses


@pytest.mark.parametrize("preset", ["bibert", "bit", "binarybert"])
def test_save_load_round_trip_is_exact(preset, tmp_path):
    paddle.seed(7)
    model = quantize_model(BertForSequenceClassification(tiny_config()), preset)
    ids, types = batch()
    model.train()
    model(ids, token_type_ids=types)  # first-batch initialisation of learnable quantizers
    for p in model.parameters():  # move every parameter away from its init
        p.set_value(p + 0.01)
    model.eval()
    before = model(ids, token_type_ids=types).numpy()
    model.save_pretrained(str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert type(loaded) is BertForSequenceClassification
    assert quant_config_of(loaded) == QuantConfig.from_preset(preset)
    np.testing.assert_array_equal(loaded(ids, token_type_ids=types).numpy(), before)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k].numpy(), v.numpy(), err_msg=k)


def test_loading_config_with_unknown_quantizer_fails_with_choices(tmp_path):
    import json

    model = quantize_model(BertForSequenceClassification(tiny_config()), "bibert")
    model.save_pretrained(str(tmp_path))
    cfg_path = tmp_path / "config.json"
    data = json.loads(cfg_path.read_text())
    data["binbert_quant_config"]["weight_quantizer"] = "xnor"
    cfg_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"config of .*: QuantConfig.weight_quantizer=.xnor. is unknown; valid names"):
        load_model(str(tmp_path))
    data["binbert_quant_config"]["weight_quantizer"] = "bibert"
    data["binbert_quant_config"]["activation_bits"] = 3
    cfg_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"activation_bits=3 is invalid; valid values"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("preset", ["fp", "bibert", "bit"])
def test_recording_exposes_qkv_and_masked_scores(preset):
    _, student = pair(BertForSequenceClassification, preset)
    ids, types = batch()
    set_recording(student, True)
    student(ids, token_type_ids=types)
    records = attention_records(student)
    assert len(records) == 2
    for rec in records:
        assert rec.query.shape == [3, 12, 32] and rec.value.shape == [3, 12, 32]
        assert rec.scores.shape == [3, 4, 12, 12]
        # padding keys of example 2 (positions >= 2) carry the -1e4 mask
        assert float(rec.scores[2, :, :, 2:].max()) < -100
    set_recording(student, False)
    with pytest.raises(RuntimeError):
        attention_records(student)


LINEARS = {"q_proj", "k_proj", "v_proj", "out_proj", "linear1", "linear2"}


def _today_layout(bert, config):
    """What every sublayer of a quantized BertModel is under the default filter, written out independently."""
    expected = {}
    for name, layer in bert.named_sublayers():
        if name == "embeddings.word_embeddings":
            expected[name] = QuantEmbedding
        elif name == "pooler.dense" or (name.startswith("encoder.layers.") and name.rsplit(".", 1)[1] in LINEARS):
            expected[name] = QuantLinear
        elif name.endswith(".self_attn"):
            expected[name] = (QuantMultiHeadAttention, config.attention)
        elif isinstance(layer, nn.LayerNorm):
            expected[name] = EngineLayerNorm if config.activation_bits == 1 else nn.LayerNorm
    return expected


def _layout(bert):
    out = {}
    for name, layer in bert.named_sublayers():
        if isinstance(layer, QuantMultiHeadAttention):
            out[name] = (QuantMultiHeadAttention, layer.variant)
        elif isinstance(layer, (QuantEmbedding, QuantLinear, nn.LayerNorm)):
            out[name] = type(layer)
    return out


@pytest.mark.parametrize("preset", ["fp"] + PRESETS)
def test_default_filter_is_quantization_role(preset):
    paddle.seed(3)
    a = quantize_model(BertForSequenceClassification(tiny_config()), preset)
    paddle.seed(3)
    b = quantize_model(BertForSequenceClassification(tiny_config()), preset, filter_fn=quantization_role)
    assert _layout(a.bert) == _layout(b.bert) == _today_layout(a.bert, QuantConfig.from_preset(preset))
    assert not hasattr(a.config, FILTER_KEY) and not hasattr(b.config, FILTER_KEY)  # nothing recorded
    ids, types = batch()
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(ids, token_type_ids=types).numpy(), b(ids, token_type_ids=types).numpy())


def _keep_last_layer_fp(name, layer):
    return None if name.startswith("encoder.layers.1.") else quantization_role(name, layer)


def test_custom_filter_keeps_the_last_layer_full_precision(tmp_path):
    paddle.seed(0)
    cfg = tiny_config()  # 2 encoder layers
    ref = BertForSequenceClassification(cfg)
    ref.eval()
    student = BertForSequenceClassification(cfg)
    student.set_state_dict(ref.state_dict())
    quantize_model(student, "bibert", filter_fn=_keep_last_layer_fp)
    student.eval()
    first, last = student.bert.encoder.layers
    assert type(first.linear1) is QuantLinear and first.self_attn.variant == "bi"
    assert type(first.norm1) is EngineLayerNorm
    assert all(type(getattr(last, n)) is nn.Linear for n in ("linear1", "linear2"))
    assert type(last.self_attn.q_proj) is nn.Linear and type(last.norm2) is nn.LayerNorm
    attn = last.self_attn  # a QuantMultiHeadAttention (it records) without any quantizer
    assert attn.variant == "quant" and attn.query_quantizer is None and attn.prob_quantizer is None
    assert type(student.bert.pooler.dense) is QuantLinear
    # the last layer computes exactly what the FP model's last layer computes
    hidden = paddle.randn([3, 12, cfg.hidden_size])
    mask = paddle.zeros([3, 1, 1, 12])
    np.testing.assert_allclose(
        last(hidden, mask).numpy(), ref.bert.encoder.layers[1](hidden, mask).numpy(), atol=1e-6, rtol=0
    )
    # recorded and replayed: the loaded student has the same layout and outputs
    kept = ["self_attn", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"]
    kept += ["linear1", "linear2", "norm1", "norm2"]
    assert getattr(student.config, FILTER_KEY) == {f"encoder.layers.1.{name}": None for name in kept}
    with pytest.raises(ValueError, match="custom filter_fn"):  # the packed engine quantizes every layer
        pack_model(student, tmp_path / "packed")
    student.save_pretrained(str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert _layout(loaded.bert) == _layout(student.bert)
    ids, types = batch()
    np.testing.assert_array_equal(loaded(ids, token_type_ids=types).numpy(), student(ids, token_type_ids=types).numpy())


def test_filter_roles_are_checked():
    with pytest.raises(ValueError, match=r"filter_fn gave embeddings the unknown role .ternary.; valid roles"):
        quantize_model(BertForSequenceClassification(tiny_config()), "bibert", filter_fn=lambda n, layer: "ternary")
    with pytest.raises(ValueError, match=r"gave embeddings \(BertEmbeddings\) the role .linear., which needs a Linear"):
        quantize_model(BertForSequenceClassification(tiny_config()), "bibert", filter_fn=lambda n, layer: "linear")
