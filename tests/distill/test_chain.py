"""Multi-stage distillation (BiT chains, the BinaryBERT pipeline) and the --clip_lr parameter group."""

import json
import os

import numpy as np
import paddle
import pytest
import yaml
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import QuantConfig, load_model, quantize_model
from paddle_binbert.distill.chain import ChainStage, binarybert_pipeline, parse_chain, with_bits
from paddle_binbert.distill.task_distill import main
from paddle_binbert.models import latent_fp_model, quant_config_of
from paddle_binbert.splitting import split_layers_of, split_ternary_model
from paddle_binbert.train.run_setup import make_training_args
from paddle_binbert.train.trainer import BinBertTrainer

from ..tiny import tiny_bert_config
from .test_task_distill import common, make_teacher


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("chain_teacher")
    make_teacher(path)
    return str(path)


# ------------------------------------------------------------------------------- parsing
def test_parse_chain_from_bits_and_yaml(tmp_path):
    stages = parse_chain("32-32-32, 1-1-2,1-1-1")
    assert [s.bits for s in stages] == ["32-32-32", "1-1-2", "1-1-1"]
    assert all(s.init == "previous" and s.teacher == "previous" for s in stages)
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump({"distill_chain": ["1-1-4", {"bits": "1-1-1", "loss": "bit", "name": "last"}]}))
    stages = parse_chain(str(path))
    assert stages[1] == ChainStage(bits="1-1-1", loss="bit", name="last")


@pytest.mark.parametrize(
    "spec, message",
    [("1-1", "stage 1"), ("1-1-1,1-1-3", "stage 2"), ([{"bits": "1-1-1", "init": "split", "teacher": "x"}], "teacher"),
     ([{"bits": "1-1-1", "colour": 1}], "colour"), ([{"loss": "nope"}], "nope"), ("", "no stage")],
)
def test_parse_chain_errors_name_the_stage_and_field(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_chain(spec)


def test_with_bits_keeps_families_it_can_and_replaces_the_others():
    bit = QuantConfig.from_preset("bit")
    two = with_bits(bit, "1-1-2")
    assert two.bits == (1, 1, 2) and two.activation_quantizer == "lsq" and two.attention == "quant"
    assert two.weight_quantizer == "bwn_centered" and two.hidden_act == "relu"
    fp = with_bits(bit, "32-32-32")
    assert fp.is_full_precision and fp.weight_quantizer == "none" and fp.hidden_act == "relu"
    assert with_bits(bit, "1-1-1") is bit
    ternary = with_bits(QuantConfig.from_preset("bibert"), "2-2-1")
    assert ternary.weight_quantizer == "twn" and ternary.activation_quantizer == "sign" and ternary.attention == "bi"


def test_latent_fp_model_keeps_latent_weights_and_activation():
    paddle.seed(3)
    student = quantize_model(BertForSequenceClassification(tiny_bert_config()), "bit")
    fp = latent_fp_model(student)
    assert quant_config_of(fp) is None and fp.config.hidden_act == "relu"
    own = student.state_dict()
    for name, value in fp.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), own[name].numpy())
    ternary = quantize_model(BertForSequenceClassification(tiny_bert_config()), "binarybert_ternary")
    with pytest.raises(ValueError, match="split"):
        latent_fp_model(split_ternary_model(ternary))


# ------------------------------------------------------------------------------- --clip_lr
def test_clip_lr_gives_quantizer_parameters_their_own_learning_rate(tmp_path):
    paddle.seed(0)
    model = quantize_model(BertForSequenceClassification(tiny_bert_config()), "bit")
    ids = paddle.randint(1, 99, [4, 12])
    model(ids)  # first-batch initialisation of the elastic alpha
    lr, clip_lr = 1e-3, 1e-4
    args = make_training_args(str(tmp_path), batch_size=4, learning_rate=lr, num_train_epochs=1, weight_decay=0.0)
    trainer = BinBertTrainer(model=model, args=args, clip_lr=clip_lr)
    optimizer = trainer.create_optimizer(lr_scheduler=lr)
    named = dict(model.named_parameters())
    before = {n: p.numpy().copy() for n, p in named.items()}
    loss = paddle.nn.functional.cross_entropy(model(ids), paddle.to_tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    # Adam's first step moves every parameter with a non-zero gradient by its learning rate (times ~1)
    quant_steps, other_steps = [], []
    for name, p in named.items():
        if p.grad is None:
            continue
        g = p.grad.numpy()
        moved = np.abs(p.numpy() - before[name])[np.abs(g) > 1e-6]
        (quant_steps if "quantizer" in name else other_steps).append(moved)
    quant_steps, other_steps = np.concatenate(quant_steps), np.concatenate(other_steps)
    assert quant_steps.size > 0 and other_steps.size > 0
    np.testing.assert_allclose(np.median(quant_steps), clip_lr, rtol=0.05)
    np.testing.assert_allclose(np.median(other_steps), lr, rtol=0.05)
    assert quant_steps.max() < 2 * clip_lr


# ------------------------------------------------------------------------------- chains end to end
def test_bit_multistep_chain_runs_resumes_and_refuses_another_chain(teacher_dir, tmp_path):
    out = tmp_path / "chain"
    flags = common(teacher_dir, out) + ["--max_steps", "4", "--method", "bit", "--distill_chain", "32-32-32,1-1-1"]
    results = main(flags)
    first, second = (out / "stage1_32-32-32", out / "stage2_1-1-1")
    assert [r["bits"] for r in results["chain"]] == ["32-32-32", "1-1-1"]
    assert results["bits"] == "1-1-1" and results["final_stage_dir"] == str(second)
    stage2 = json.loads((second / "results.json").read_text())
    assert stage2["args"]["teacher_path"] == str(first) and stage2["teacher_from"] == "previous stage"
    # stage 2's teacher is the FP-ReLU stage-1 student, loaded with its own config
    stage1_model = load_model(str(first))
    assert quant_config_of(stage1_model).is_full_precision and stage1_model.config.hidden_act == "relu"
    # the chain folder holds the final student itself
    final = load_model(str(out))
    assert quant_config_of(final).bits == (1, 1, 1)
    assert "| stage |" in results["summary"] and len(results["summary"].splitlines()) == 4

    with pytest.raises(SystemExit):  # a previous chain is there: --resume or --overwrite_output_dir
        main(flags)
    # an interrupted second stage resumes from its checkpoint; the finished first stage is skipped
    os.remove(second / "results.json")
    os.remove(out / "results.json")
    mtime = (first / "results.json").stat().st_mtime
    resumed = main(flags + ["--resume"])
    assert (first / "results.json").stat().st_mtime == mtime
    assert resumed["chain"][1]["resumed_from"].endswith("checkpoint-4")
    with pytest.raises(ValueError, match="different chain"):
        main(common(teacher_dir, out) + ["--max_steps", "4", "--method", "bit", "--distill_chain", "1-1-1",
                                         "--resume"])


def test_binarybert_pipeline_splits_under_a_budget(teacher_dir, tmp_path):
    out = tmp_path / "bbert"
    results = main(common(teacher_dir, out) + ["--max_steps", "2", "--method", "binarybert",
                                               "--split_budget_mb", "0.036"])
    names = [s.name for s in binarybert_pipeline()]
    assert [r["stage"] for r in results["chain"]] == names
    s1, s2, s3 = results["chain"]
    assert set(s1["loss"]) == {"att_mse", "hid_mse"} and set(s2["loss"]) == set(s3["loss"]) == {"pred"}
    assert s1["args"]["teacher_path"] == s3["args"]["teacher_path"] == teacher_dir  # the FP teacher throughout
    assert s1["bits"] == s2["bits"] == "2-2-4" and s3["bits"] == "1-1-4"
    # stage 1 trains at 2.5x the learning rate
    log1 = json.loads((out / f"stage1_{names[0]}" / "trainer_state.json").read_text())["log_history"]
    lrs = [e["learning_rate"] for e in log1 if "learning_rate" in e]
    assert max(lrs) > 1e-3  # peak lr 2.5e-3 with --learning_rate 1e-3
    plan = s3["split_plan"]
    assert 0 < len(plan["chosen"]) < 14 and plan["size_mib"] <= 0.036
    assert (out / f"stage3_{names[2]}" / "split_plan.txt").is_file()
    final = load_model(str(out))
    assert split_layers_of(final) == plan["chosen"]
    assert s3["student_size_mib"] == pytest.approx(plan["size_mib"], rel=0.05)


def test_split_budget_needs_a_split_stage(teacher_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(common(teacher_dir, tmp_path / "x") + ["--method", "bit", "--split_budget_mb", "1"])
    assert "split stage" in capsys.readouterr().err
