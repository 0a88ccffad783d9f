"""BinaryBERT's half-width start wired into the pipeline: ``task_distill --method binarybert --half_width``
end to end (GLUE and SQuAD), loading / quantizing / sizing half-width and widened models, the
attention-score loss against the teacher's kept heads, and the error cases."""

import json
import os

import numpy as np
import paddle
import pytest
from paddlenlp.transformers import BertForSequenceClassification, BertTokenizer

from paddle_binbert import Taskflow, load_model, quantize_model
from paddle_binbert.data.glue import load_glue_features
from paddle_binbert.distill.losses import DistillLossConfig, compute_distill_loss
from paddle_binbert.distill.pipeline import HALF_WIDTH_PLAN_FILE, run, run_distill_chain
from paddle_binbert.distill.squad_distill import main as squad_main
from paddle_binbert.distill.squad_distill import parse_args as squad_args
from paddle_binbert.distill.task_distill import main, parse_args
from paddle_binbert.models import latent_fp_model, quant_config_of, set_recording
from paddle_binbert.splitting import SplitQuantLinear, split_layers_of
from paddle_binbert.splitting.adaptive import model_size_bytes
from paddle_binbert.splitting.half_width import (
    HALF_WIDTH_CONFIG_KEY,
    halve_model,
    plan_width,
    teacher_heads_for,
    widen_by_split,
)
from paddle_binbert.tasks.glue import GlueTask
from paddle_binbert.tasks.squad import SquadTask
from paddle_binbert.train.objectives import collect_outputs
from tests.distill.test_task_distill import FIXTURES, SST2, common, make_teacher
from tests.squad.helpers import make_qa_checkpoint, write_squad_files
from tests.tiny import BIBERT_FLAGS, tiny_bert_config

STAGES = ("stage1_ternary_intermediate", "stage2_ternary_prediction", "stage3_split_binary")
MIB = 2.0**20


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hw_teacher")
    make_teacher(path)
    return str(path)


def _dev_inputs(folder):
    tok = BertTokenizer.from_pretrained(str(folder))
    feats = load_glue_features(SST2, "SST-2", "dev", tok, 32)
    return feats, [(paddle.to_tensor([f["input_ids"]]), paddle.to_tensor([f["token_type_ids"]])) for f in feats]


def _logits(model, inputs):
    model.eval()
    with paddle.no_grad():
        return np.concatenate([model(ids, token_type_ids=tt).numpy() for ids, tt in inputs])


def _attn_widths(model):
    return [
        (layer.self_attn.num_heads, layer.self_attn.head_dim, layer.linear1.weight.shape[1])
        for layer in model.bert.encoder.layers
    ]


# ------------------------------------------------------------------------------- end to end
def test_binarybert_half_width_pipeline_end_to_end(teacher_dir, tmp_path):
    out = tmp_path / "hw"
    flags = common(teacher_dir, out) + ["--max_steps", "2", "--method", "binarybert", "--half_width"]
    students = {}

    def spy(stage_args, quant, loss, student):
        results = run(stage_args, GlueTask(), quant, loss, student)
        students[os.path.basename(stage_args.output_dir)] = student
        return results

    args = parse_args(flags)
    results = run_distill_chain(args, GlueTask(), run_fn=spy)
    assert all((out / s / "results.json").is_file() for s in STAGES)
    s1, s2, s3 = results["chain"]

    # the Taylor plan was measured on the first training batches with the task loss
    plan = json.loads((out / STAGES[0] / HALF_WIDTH_PLAN_FILE).read_text())
    batches = GlueTask().importance_batches(args)
    assert plan["method"] == "taylor" and plan["num_batches"] == len(batches) == 3  # 12 examples / batch 4
    assert sum(int(b["input_ids"].shape[0]) for b in batches) == 12 and "labels" in batches[0]
    teacher = load_model(teacher_dir)
    expected = plan_width(teacher, importance="taylor", batches=batches)
    assert plan["heads"] == expected.heads and plan["neurons"] == expected.neurons
    assert s1["half_width"]["heads"] == expected.heads and s1["half_width"]["importance"] == "taylor"

    # stages 1 and 2: half-width ternary students (half the heads and FFN neurons, head size kept)
    for name in STAGES[:2]:
        model = load_model(str(out / name))
        assert quant_config_of(model).name == "binarybert_ternary" and not split_layers_of(model)
        assert model.config.num_attention_heads == 2 and model.config.intermediate_size == 32
        assert _attn_widths(model) == [(2, 8, 32), (2, 8, 32)]
        attn = model.bert.encoder.layers[0].self_attn
        assert attn.q_proj.weight.shape == [32, 16] and attn.out_proj.weight.shape == [16, 32]
        assert model.bert.encoder.layers[0].linear2.weight.shape == [32, 32]
        assert getattr(model.config, HALF_WIDTH_CONFIG_KEY)["heads"] == expected.heads
        saved = json.loads((out / name / "results.json").read_text())
        assert saved["student_size_mib"] == pytest.approx(model_size_bytes(model) / MIB, rel=1e-12)
    # the attention-score term ran against the teacher's kept heads in stage 1
    log1 = json.loads((out / STAGES[0] / "trainer_state.json").read_text())["log_history"]
    assert any("loss_att_mse" in e for e in log1)

    # stage 3 and the chain folder: the split binary model, widened back to the full binary weight count
    final = load_model(str(out))
    assert quant_config_of(final).name == "binarybert" and s3["bits"] == "1-1-4"
    assert len(split_layers_of(final)) == 14  # word embedding + 6 per layer + pooler
    q = final.bert.encoder.layers[1].self_attn.q_proj
    assert isinstance(q, SplitQuantLinear) and q.weight1.shape == q.weight2.shape == [32, 16]
    assert getattr(final.config, HALF_WIDTH_CONFIG_KEY)["widened"] is True
    # same logits as the trained student the trainer evaluated and saved
    feats, inputs = _dev_inputs(out)
    reloaded = _logits(final, inputs)
    np.testing.assert_allclose(reloaded, _logits(students[STAGES[2]], inputs), rtol=1e-5, atol=1e-5)
    acc = float(np.mean(reloaded.argmax(-1) == np.array([f["labels"] for f in feats])))
    assert acc == pytest.approx(results["student"]["acc"])
    # Taskflow serves the folder with the same model
    text = "a gripping , funny film"
    (result,) = Taskflow("text_classification", task_path=str(out), max_length=32)(text)
    enc = BertTokenizer.from_pretrained(str(out))(text, max_length=32, truncation=True)
    direct = _logits(
        students[STAGES[2]], [(paddle.to_tensor([enc["input_ids"]]), paddle.to_tensor([enc["token_type_ids"]]))]
    )[0].astype(np.float64)
    probs = np.exp(direct - direct.max()) / np.exp(direct - direct.max()).sum()
    assert result["predictions"][0]["score"] == pytest.approx(probs.max(), abs=2e-5)
    # sizes from the real shapes: the results' size is the loaded model's, above the half-width ternary
    # model's binary count; the split encoder holds exactly the full-width model's binary weights
    assert results["student_size_mib"] == pytest.approx(model_size_bytes(final) / MIB, rel=1e-12)
    full = quantize_model(load_model(teacher_dir), "binarybert")
    enc_bits = sum(
        2 * int(np.prod(m.weight1.shape)) for m in final.bert.encoder.sublayers() if isinstance(m, SplitQuantLinear)
    )
    assert enc_bits == sum(
        int(np.prod(m.weight.shape)) for m in full.bert.encoder.sublayers() if hasattr(m, "weight_quantizer")
    )

    # chain.json records the setting: a rerun without --half_width (or with another importance) is refused
    assert json.loads((out / "chain.json").read_text())["half_width"] == {"importance": "taylor", "batches": 8}
    base = common(teacher_dir, out) + ["--max_steps", "2", "--method", "binarybert", "--resume"]
    for extra in ([], ["--half_width", "--half_width_importance", "magnitude"]):
        with pytest.raises(ValueError, match="different chain.*half_width"):
            main(base + extra)


def test_squad_half_width_pipeline(tmp_path):
    teacher = tmp_path / "qa"
    make_qa_checkpoint(teacher)
    train, dev = write_squad_files(tmp_path / "squad")
    out = tmp_path / "run"
    flags = ["--teacher_path", str(teacher), "--task_name", "squad", "--train_file", str(train),
             "--predict_file", str(dev), "--max_seq_length", "24", "--doc_stride", "6", "--max_query_length", "10",
             "--batch_size", "4", "--learning_rate", "1e-3", "--max_steps", "1", "--eval_steps", "1",
             "--max_eval_examples", "2", "--output_dir", str(out), "--method", "binarybert", "--half_width",
             "--half_width_batches", "2"]  # fmt: skip
    batches = SquadTask().importance_batches(squad_args(flags))
    assert len(batches) == 2 and {"start_positions", "end_positions"} <= set(batches[0])
    results = squad_main(flags)
    assert results["chain"][0]["half_width"]["num_attention_heads"] == 2
    final = load_model(str(out))
    assert type(final).__name__ == "BertForQuestionAnswering" and split_layers_of(final)
    assert final.bert.encoder.layers[0].self_attn.k_proj.weight1.shape[1] == final.config.hidden_size // 2
    assert results["student_size_mib"] == pytest.approx(model_size_bytes(final) / MIB, rel=1e-12)


# ------------------------------------------------------------------------------- pieces
def _tiny(seed=0):
    paddle.seed(seed)
    model = BertForSequenceClassification(
        tiny_bert_config(vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    model.eval()
    return model


def _ids(seed=3):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 100, size=(3, 10))
    ids[1, 6:] = 0  # padding: masked attention entries
    return paddle.to_tensor(ids)


# heads [1, 3] in layer 0 and [0, 2] in layer 1: not the first heads, so a wrong mapping shows
GIVEN = (np.array([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 2.0, 0.0]]), np.tile(np.arange(64.0), (2, 1)))


def test_att_mse_compares_the_teachers_kept_heads():
    ids = _ids()
    teacher = quantize_model(_tiny(1), "fp")
    student = halve_model(_tiny(1), importance=GIVEN)
    quantize_model(student, "fp")
    heads = teacher_heads_for(student, teacher)
    assert heads == [[1, 3], [0, 2]]
    cfg = DistillLossConfig(att_mse=1.0)
    for m in (teacher, student):
        set_recording(m, True)
    s_out = collect_outputs(student, {"input_ids": ids}, cfg)
    t_out = collect_outputs(teacher, {"input_ids": ids}, cfg)
    _, terms = compute_distill_loss(cfg, s_out, t_out, teacher_heads=heads)

    def unmask(x):
        x = x.numpy().astype(np.float64)
        return np.where(x <= -100, 0.0, x)

    by_hand = sum(
        np.mean((unmask(s_out.scores[layer]) - unmask(t_out.scores[layer])[:, heads[layer]]) ** 2) for layer in range(2)
    )
    assert terms["att_mse"] == pytest.approx(by_hand, rel=1e-5)
    # the student's scores are the teacher's on the kept heads: the halved FP copy of the teacher itself
    np.testing.assert_allclose(s_out.scores[0].numpy(), t_out.scores[0].numpy()[:, [1, 3]], rtol=1e-5, atol=1e-4)
    wrong = sum(np.mean((unmask(s_out.scores[layer]) - unmask(t_out.scores[layer])[:, :2]) ** 2) for layer in range(2))
    assert wrong > 1000 * by_hand  # the first two teacher heads are not the student's
    # the mapping is required: a half student against all teacher heads does not broadcast
    with pytest.raises(ValueError, match="[Bb]roadcast"):
        compute_distill_loss(cfg, s_out, t_out)
    # Q/K/V direction matching is refused for a half-width student
    with pytest.raises(ValueError, match="half-width"):
        compute_distill_loss(DistillLossConfig(att_mse=1.0, query=1.0), s_out, t_out, teacher_heads=heads)
    # a half-width teacher, or one with another head count, is refused
    with pytest.raises(ValueError, match="teacher is a half-width"):
        teacher_heads_for(student, student)
    six = quantize_model(
        BertForSequenceClassification(tiny_bert_config(vocab_size=100, hidden_size=48, num_attention_heads=6)), "fp"
    )
    with pytest.raises(ValueError, match="6 heads"):
        teacher_heads_for(student, six)


def test_split_half_width_model_keeps_the_ternary_logits_after_save_and_reload(tmp_path):
    ids = _ids()
    model = halve_model(_tiny(4), importance=GIVEN)
    quantize_model(model, "binarybert_ternary")
    model.train()
    model(ids)  # initialise the LSQ steps
    model.eval()
    with paddle.no_grad():
        ternary = model(ids).numpy()
    model.save_pretrained(str(tmp_path / "ternary"))
    loaded = load_model(str(tmp_path / "ternary"))
    with paddle.no_grad():
        np.testing.assert_allclose(loaded(ids).numpy(), ternary, rtol=0, atol=1e-6)
    assert model_size_bytes(loaded) == model_size_bytes(model)
    widen_by_split(loaded)
    loaded.save_pretrained(str(tmp_path / "split"))
    split = load_model(str(tmp_path / "split"))
    assert isinstance(split.bert.encoder.layers[0].linear1, SplitQuantLinear)
    with paddle.no_grad():
        np.testing.assert_allclose(split(ids).numpy(), ternary, rtol=0, atol=1e-5)
    assert model_size_bytes(split) == model_size_bytes(loaded) > model_size_bytes(model) / 2
    # the half-width latent FP model rebuilds with the half layout
    fp = latent_fp_model(model)
    assert _attn_widths(fp) == _attn_widths(model) == [(2, 8, 32), (2, 8, 32)]


def test_quantize_half_width_model_uses_the_projection_widths(tmp_path):
    ids = _ids()
    model = halve_model(_tiny(5), importance=GIVEN)
    quantize_model(model, "bit")  # elastic per-channel Q/K/V quantizers
    attn = model.bert.encoder.layers[0].self_attn
    assert attn.query_quantizer.beta.shape == [16] and attn.value_quantizer.beta.shape == [16]
    model.train()
    model(ids)
    model.eval()
    with paddle.no_grad():
        before = model(ids).numpy()
    model.save_pretrained(str(tmp_path))
    with paddle.no_grad():
        np.testing.assert_allclose(load_model(str(tmp_path))(ids).numpy(), before, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "bit", "--half_width"], "needs --method binarybert"),
        (["--half_width"], "needs --method binarybert"),  # the default method is bibert
        (["--method", "binarybert", "--distill_chain", "1-1-2,1-1-1", "--half_width"], "not to --distill_chain"),
        (["--method", "binarybert", "--half_width", "--half_width_batches", "0"], "must be positive"),
        (["--method", "binarybert", "--half_width", "--half_width_importance", "random"], "invalid choice"),
    ],
)
def test_parser_errors(teacher_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        main(common(teacher_dir, tmp_path / "x") + extra)
    assert message in capsys.readouterr().err


def test_half_width_student_checkpoints_load_and_refuse_what_cannot_work(teacher_dir, tmp_path):
    # a halved FP checkpoint (PaddleNLP folder) loads with its half layout ...
    half_dir = tmp_path / "half"
    model = load_model(teacher_dir)
    halve_model(model, importance="magnitude")
    model.save_pretrained(str(half_dir))
    BertTokenizer(os.path.join(FIXTURES, "vocab.txt")).save_pretrained(str(half_dir))
    reloaded = load_model(str(half_dir))
    assert _attn_widths(reloaded) == [(2, 8, 32), (2, 8, 32)]
    # ... --half_width does not halve it again ...
    flags = common(teacher_dir, tmp_path / "again") + ["--max_steps", "1", "--method", "binarybert", "--half_width",
                                                      "--half_width_importance", "magnitude"]  # fmt: skip
    flags[flags.index("--student_model_name_or_path") + 1] = str(half_dir)
    with pytest.raises(ValueError, match="already half-width"):
        main(flags)
    # ... and BiBERT's Q/K/V direction matching refuses a half-width student before training
    flags = common(teacher_dir, tmp_path / "bibert") + ["--max_steps", "1"] + BIBERT_FLAGS
    flags[flags.index("--student_model_name_or_path") + 1] = str(half_dir)
    with pytest.raises(ValueError, match="half-width student"):
        main(flags)
    assert not (tmp_path / "bibert" / "results.json").exists()
