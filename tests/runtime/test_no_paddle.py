"""paddle_binbert.runtime imports and runs without Paddle: in a fresh interpreter, loading and running
packed models (classification and QA, the Predictor included) leaves neither ``paddle`` nor
``paddlenlp`` in ``sys.modules``, and works with both made unimportable. The lazy top-level package
still gives the Paddle-based names."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertTokenizer

from paddle_binbert import engine
from paddle_binbert.export import pack_model
from tests.engine import make_student, random_batch, tiny_config

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ROOT / "tests" / "fixtures" / "vocab.txt"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    if sys.argv[3] == "block":  # make Paddle and PaddleNLP unimportable, as on a machine without them
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("paddle", "paddlenlp"):
                    raise ImportError(f"{name} is blocked in this test")
                return None
        sys.meta_path.insert(0, Block())
    import numpy as np
    import paddle_binbert.runtime
    from paddle_binbert import runtime
    ids = np.array(json.loads(sys.argv[4]), dtype="int64")
    cls = runtime.load(sys.argv[1], num_threads=1)
    logits = cls(ids, np.zeros_like(ids), (ids != 0).astype("int64"))
    start, end = runtime.load(sys.argv[2], num_threads=1)(ids)
    texts = runtime.Predictor(sys.argv[1], max_length=16)(["a gripping , funny film", ("a cat", "the mat")])
    answers = runtime.Predictor(sys.argv[2], max_length=32)({"question": "Who?", "context": "Ann Lee wrote it."})
    import paddle_binbert
    print(json.dumps({
        "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("paddle", "paddlenlp")),
        "logits": logits.tolist(), "start": start.tolist(), "end": end.tolist(),
        "texts": texts, "answers": answers, "version": paddle_binbert.__version__,
    }))
    """
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("nopaddle")
    tokenizer = BertTokenizer(vocab_file=str(VOCAB))
    config = tiny_config(vocab=len(tokenizer.vocab), max_pos=64)
    cls = pack_model(
        make_student("bibert", BertForSequenceClassification, config=config), root / "cls", tokenizer=tokenizer
    )
    qa = pack_model(make_student("bit", BertForQuestionAnswering, config=config), root / "qa", tokenizer=tokenizer)
    return cls, qa


@pytest.mark.parametrize("mode", ["plain", "block"])
def test_runtime_runs_without_paddle(lib, ops, folders, mode):
    cls, qa = folders
    ids = random_batch(2, 9, seed=5)[0].numpy()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cls), str(qa), mode, json.dumps(ids.tolist())],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["modules"] == [], result["modules"]
    # the outputs are the Paddle engine's
    np.testing.assert_array_equal(
        np.float32(result["logits"]), engine.load(cls, backend="native")(ids, np.zeros_like(ids), ids != 0)
    )
    start, end = engine.load(qa, backend="native")(ids)
    np.testing.assert_array_equal(np.float32(result["start"]), start)
    np.testing.assert_array_equal(np.float32(result["end"]), end)
    assert [r["text"] for r in result["texts"]] == ["a gripping , funny film", ["a cat", "the mat"]]
    assert set(result["answers"][0]) == {"answer", "score", "start", "end"}


def test_lazy_top_level_names_still_work():
    import paddle_binbert

    for name in paddle_binbert.__all__:
        assert getattr(paddle_binbert, name) is not None, name
    from paddle_binbert import QuantConfig, Taskflow, quantize_model  # noqa: F401

    assert "Taskflow" in dir(paddle_binbert)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        paddle_binbert.nope  # noqa: B018
    assert engine.SimulatedBertEngine is not None and engine.base.PackedRunnerBase is not None
