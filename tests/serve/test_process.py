"""The server outside this (Paddle-holding) test process: importing and running paddle_binbert.serve
imports neither Paddle nor PaddleNLP, and ``paddle-binbert serve`` started as a real uvicorn server on
127.0.0.1 (Paddle made unimportable; one and two workers) answers PaddleNLP-style clients, batches
concurrent requests and shuts down cleanly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from paddle_binbert import runtime
from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BLOCK = textwrap.dedent(
    """
    import sys
    class Block:  # Paddle and PaddleNLP unimportable, as on a machine without them
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("paddle", "paddlenlp"):
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, Block())
    """
)
IN_PROCESS = BLOCK + textwrap.dedent(
    """
    import json
    from fastapi.testclient import TestClient
    from paddle_binbert.serve import ServeConfig, build_app
    out = {}
    for task, path, data in (
        ("text_classification", sys.argv[1], {"text": ["a gripping , funny film", ["a cat", "the mat"]]}),
        ("question_answering", sys.argv[2], {"question": "Who?", "context": "Ann Lee wrote it."}),
    ):
        with TestClient(build_app(ServeConfig(path=path, max_length=32, num_threads=1))) as client:
            out[task] = client.post(f"/taskflow/{task}", json={"data": data}).json()
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("paddle", "paddlenlp"))
    print(json.dumps(out))
    """
)
SERVE = BLOCK + "from paddle_binbert.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def test_serve_imports_and_runs_without_paddle(cls_folder, qa_folder):
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(cls_folder), str(qa_folder)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(ROOT),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    cls = runtime.Predictor(cls_folder, max_length=32, num_threads=1)(["a gripping , funny film", ("a cat", "the mat")])
    assert out["text_classification"] == {"result": json.loads(json.dumps(cls))}
    qa = runtime.Predictor(qa_folder, max_length=32, num_threads=1)(
        {"question": "Who?", "context": "Ann Lee wrote it."}
    )
    assert out["question_answering"] == {"result": qa}


class Server:
    """``paddle-binbert serve`` in a subprocess with Paddle blocked, on a free port of 127.0.0.1."""

    def __init__(self, folder, tmp_path, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / f"server_{self.port}.log", "w+")
        cmd = [sys.executable, "-c", SERVE, "serve", str(folder), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd + list(args),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=str(ROOT),
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.health = requests.get(self.url + "/health", timeout=5).json()
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"the server did not start:\n{self.output()}") from None
                time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and its workers
                self.proc.wait(10)
        return self.proc.returncode


def test_cli_server_paddlenlp_client(cls_folder, tmp_path):
    server = Server(cls_folder, tmp_path, "--num_threads", "1", "--max_wait_ms", "300", "--max_batch_size", "8")
    try:
        assert server.health["task"] == "text_classification" and server.health["batching"]["max_wait_ms"] == 300
        # the request of PaddleNLP's simple-serving client scripts
        url = server.url + "/taskflow/text_classification"
        headers = {"Content-Type": "application/json"}
        texts = ["a gripping , funny film", "dull and long"]
        data = {"data": {"text": texts}, "parameters": {"max_seq_len": 128, "batch_size": 2}}
        r = requests.post(url=url, headers=headers, data=json.dumps(data), timeout=60)
        datas = json.loads(r.text)
        predictor = runtime.Predictor(cls_folder, max_length=128, num_threads=1)
        assert r.status_code == 200 and datas == {"result": predictor(texts)}
        # concurrent clients: batched, each its own answer
        many = [f"review {i} : {'great' if i % 3 else 'awful'} film" for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda t: requests.post(url, json={"data": {"text": t}}, timeout=60).json(), many))
        assert [a["result"] for a in answers] == [[r] for r in predictor(many)]
        stats = requests.get(server.url + "/health", timeout=10).json()["stats"]
        assert stats["items"] == 2 + 8 and stats["requests"] == 1 + 8, stats
        bad = requests.post(url, data=b"{", headers=headers, timeout=10)
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal it handled
    assert "Application shutdown complete" in server.output()


def test_cli_two_workers(qa_folder, tmp_path):
    server = Server(qa_folder, tmp_path, "--workers", "2", "--max_length", "32", "--name", "squad")
    try:
        assert server.health["model"]["num_threads"] >= 1 and server.health["name"] == "squad"
        item = {"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."}
        expected = runtime.Predictor(qa_folder, max_length=32, num_threads=1)([item])
        for _ in range(4):
            r = requests.post(server.url + "/taskflow/squad", json={"data": item}, timeout=60)
            assert r.status_code == 200 and r.json() == {"result": expected}
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal it handled


def test_cli_bad_folder(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, "serve", str(tmp_path / "missing"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(ROOT),
        timeout=300,
    )
    assert proc.returncode == 2 and "paddle-binbert serve: cannot serve" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "args", [["--workers", "0"], ["--name", "a/b"], ["--max_wait_ms", "-1"], ["--max_wait_ms", "inf"]]
)
def test_cli_bad_arguments(args, tmp_path):
    from paddle_binbert.serve.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path)] + args)
    assert exc.value.code == 2
