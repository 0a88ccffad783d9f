"""Fault sweep (issue 25), items 10 and 15: strict checkpoint loading and clear config / weight errors.

A ``config.json`` that does not describe the saved weights (4 or 1 layers over 2), an empty weight
file, or a bad config field must fail with a ``CheckpointError`` (a ValueError) naming the file and
the keys or field, through every entry point: ``load_checkpoint``, ``load_model``, Taskflow and the
``--teacher_path`` loader of task distillation. Taskflow's integer options refuse NaN, infinities,
negatives and non-integers with a ValueError naming the option.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification, BertModel

from paddle_binbert import Taskflow, load_checkpoint, load_model
from paddle_binbert.checkpoints import CheckpointError, check_bert_config
from tests.tiny import save_tiny_checkpoint, tiny_bert_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VOCAB = FIXTURES / "vocab.txt"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A tiny 2-layer BertForSequenceClassification folder (config, weights, tokenizer)."""
    folder = tmp_path_factory.mktemp("good")
    save_tiny_checkpoint(folder, VOCAB, BertForSequenceClassification, seed=4)
    return folder


def variant(good: Path, tmp_path: Path, name: str = "bad", weights: bytes = None, **fields) -> Path:
    """A copy of ``good`` with config fields replaced (and the weight file's bytes, when given)."""
    folder = tmp_path / name
    shutil.copytree(good, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    if weights is not None:
        (folder / "model_state.pdparams").write_bytes(weights)
    return folder


def teacher_loader(path: Path, model_config=None):
    """The loader behind task distillation's ``--teacher_path`` / ``--student_model_name_or_path``."""
    from paddle_binbert.tasks.glue import load_classifier

    return load_classifier(str(path), model_config)


LOADERS = {
    "load_checkpoint": lambda p: load_checkpoint(p),
    "load_model": lambda p: load_model(str(p)),
    "taskflow": lambda p: Taskflow("text_classification", task_path=str(p)),
    "teacher_path": teacher_loader,
}


def test_good_checkpoint_still_loads_everywhere(good):
    reference = load_model(str(good))
    ids = paddle.to_tensor([[2, 7, 11, 3]], dtype="int64")
    for name, loader in LOADERS.items():
        loaded = loader(good)
        model = loaded.model if isinstance(loaded, Taskflow) else loaded
        model.eval()
        np.testing.assert_allclose(model(ids).numpy(), reference(ids).numpy(), atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------- 10: layer count vs weights


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("layers, kind", [(4, "missing"), (1, "unexpected")])
def test_layer_count_mismatch_is_an_error(good, tmp_path, loader, layers, kind):
    folder = variant(good, tmp_path, num_hidden_layers=layers)
    with pytest.raises(CheckpointError) as info:
        LOADERS[loader](folder)
    message = str(info.value)
    assert str(folder / "model_state.pdparams") in message  # names the checkpoint
    assert f"{kind} (" in message and "encoder.layers." in message  # and some offending keys
    assert f"the weights hold 2 encoder layers, the config's num_hidden_layers builds {layers}" in message


@pytest.mark.parametrize("layers", [4, 1])
def test_bare_state_dict_with_wrong_config_is_an_error(good, tmp_path, layers):
    """The BiBERT release's layout: a bare .pdparams plus a config, as --teacher_path FILE --model_config."""
    config = variant(good, tmp_path, num_hidden_layers=layers)
    weights = good / "model_state.pdparams"
    with pytest.raises(CheckpointError, match="encoder.layers.") as info:
        load_checkpoint(weights, config=str(config / "config.json"))
    assert str(weights) in str(info.value)
    with pytest.raises(CheckpointError, match=str(weights).replace("\\", "\\\\")):
        teacher_loader(weights, model_config=str(config))


def test_head_model_from_backbone_needs_strict_false(tmp_path):
    """A backbone folder loaded as a classifier lacks the head: an error by default, the documented
    freshly initialised head with ``strict=False``."""
    save_tiny_checkpoint(tmp_path, VOCAB, BertModel)
    with pytest.raises(CheckpointError, match="missing .*classifier.weight"):
        load_model(str(tmp_path), model_class=BertForSequenceClassification)
    model = load_checkpoint(tmp_path, task="sequence_classification", strict=False)
    assert isinstance(model, BertForSequenceClassification)


# ---------------------------------------------------------------------- 15: bad files and fields


@pytest.mark.parametrize("content", [b"", b"\x80\x04\x95", b"not a pickle at all"])
def test_unreadable_weight_file_names_the_path(good, tmp_path, content):
    folder = variant(good, tmp_path, weights=content)
    path = str(folder / "model_state.pdparams")
    for name, loader in LOADERS.items():
        with pytest.raises(CheckpointError) as info:
            loader(folder)
        assert path in str(info.value), name
        if not content:
            assert "empty (0 bytes)" in str(info.value)
    with pytest.raises(CheckpointError, match="empty" if not content else "cannot read the weights") as info:
        load_checkpoint(path, config=str(good))  # a bare state dict
    assert path in str(info.value)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"hidden_act": "foo"}, "field 'hidden_act' must name an activation"),
        ({"hidden_size": "64"}, "field 'hidden_size' must be a positive integer, got \"64\" (a string)"),
        ({"num_attention_heads": 5}, "'hidden_size' (32) must be divisible by field 'num_attention_heads' (5)"),
        ({"num_hidden_layers": 0}, "field 'num_hidden_layers' must be a positive integer, got 0"),
        ({"intermediate_size": 64.5}, "field 'intermediate_size' must be a positive integer"),
        ({"hidden_dropout_prob": 2}, "field 'hidden_dropout_prob' must be a number in [0, 1]"),
    ],
)
def test_bad_config_field_names_file_and_field(good, tmp_path, fields, message):
    folder = variant(good, tmp_path, **fields)
    for name, loader in LOADERS.items():
        with pytest.raises(CheckpointError) as info:
            loader(folder)
        assert str(folder / "config.json") in str(info.value), name
        assert message in str(info.value), name


def test_config_that_is_not_json_names_file_and_line(good, tmp_path):
    folder = variant(good, tmp_path)
    (folder / "config.json").write_text('{\n  "hidden_size": 32,\n  oops\n}')
    with pytest.raises(CheckpointError, match=r"config.json: invalid JSON at line 3"):
        load_checkpoint(folder)
    (folder / "config.json").write_bytes(b'{"hidden_act": "g\xe9lu"}')
    with pytest.raises(CheckpointError, match=r"config.json: expected UTF-8"):
        load_model(str(folder))


def test_check_bert_config_accepts_the_tiny_shape():
    check_bert_config(tiny_bert_config(), "tiny")
    with pytest.raises(CheckpointError, match="^cfg: field 'vocab_size'"):
        check_bert_config(tiny_bert_config(vocab_size=True), "cfg")


# ---------------------------------------------------------------------- Taskflow numbers


@pytest.mark.parametrize("name", ["max_length", "batch_size"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, 0, 2.5, "128", True, None])
def test_taskflow_rejects_bad_numbers_before_loading(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be an integer >= "):
        Taskflow("text_classification", task_path=str(tmp_path / "not-even-there"), **{name: value})


@pytest.mark.parametrize(
    "task, name",
    [
        ("text_classification", "top_k"),
        ("question_answering", "doc_stride"),
        ("question_answering", "max_query_length"),
        ("question_answering", "n_best_size"),
        ("question_answering", "max_answer_length"),
    ],
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -3, 1.5])
def test_taskflow_rejects_bad_task_options(tmp_path, task, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be an integer >= 1"):
        Taskflow(task, task_path=str(tmp_path), **{name: value})


def test_taskflow_accepts_integral_numbers(good):
    flow = Taskflow("text_classification", task_path=str(good), max_length=np.int64(16), batch_size=2.0, top_k=2)
    assert (flow.max_length, flow.batch_size, flow.top_k) == (16, 2, 2)
    assert len(flow(["a text", "another"])[1]["predictions"]) == 2
