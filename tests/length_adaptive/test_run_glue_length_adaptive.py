"""examples/run_glue.py --length_adaptive end to end on the SST-2 fixture (tiny model)."""

import pytest

from paddle_binbert.length_adaptive.search import GlueDevEvaluator

from ..tiny import load_run_glue
from .helpers import sst2_args


def test_run_glue_length_adaptive(la_run):
    out, results, state = la_run
    assert results["length_adaptive"] is True and results["global_steps"] == 4
    assert results["args"]["num_sandwich"] == 2 and results["args"]["layer_dropout_prob"] == 0.2
    assert (out / "model_state.pdparams").is_file()
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert logged and all("loss_la_smallest" in e and "loss_la_random" in e for e in logged)
    # the dev metric of the plain model equals the full-length length-adaptive evaluation
    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert.checkpoints import load_model
    from paddle_binbert.data.glue import load_glue_features

    model = load_model(str(out))
    tokenizer = BertTokenizer.from_pretrained(str(out))
    feats = load_glue_features(results["args"]["data_dir"], "SST-2", "dev", tokenizer, 24)
    evaluator = GlueDevEvaluator(model, feats, "SST-2", 24, tokenizer.pad_token_id)
    assert evaluator(None)["acc"] == pytest.approx(results["dev"]["dev"]["acc"])
    assert 0.0 <= evaluator((12, 6))["acc"] <= 1.0


@pytest.mark.parametrize(
    "flag, value", [("--num_sandwich", "-1"), ("--length_drop_ratio_bound", "1.0"), ("--layer_dropout_prob", "-0.1")]
)
def test_bad_length_adaptive_flags(tiny_bert_dir, glue_dir, tmp_path, flag, value, capsys):
    argv = ["--model_name_or_path", str(tiny_bert_dir), *sst2_args(glue_dir, tmp_path / "x", "--length_adaptive")]
    argv += [flag, value]
    with pytest.raises(SystemExit):
        load_run_glue().main(argv)
    assert flag in capsys.readouterr().err
