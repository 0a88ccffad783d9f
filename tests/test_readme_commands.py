"""Every command line and the Python API block of README.md run as written, on tiny models.

The commands are read from README.md itself (its ```bash blocks: each `python examples/...` and
`paddle-binbert ...` line, continuation lines joined), so a command added to or changed in the
README is tested as it is printed. Only paths change: `../shared/data/glue/SST-2` becomes the
fixture SST-2 folder, `runs/` a temporary folder, and the `minilm` alias (the real MiniLM-L6, too
slow for the unit tests) a 2-layer random BERT of the same format. The BiBERT release's
distillation command is one of them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import List

from .tiny import save_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIXTURES = ROOT / "tests" / "fixtures"


def readme_blocks(language: str) -> List[str]:
    """The fenced ```<language> blocks of README.md."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def readme_commands() -> List[str]:
    """The `python examples/...` and `paddle-binbert ...` command lines of README.md, in order."""
    commands = []
    for block in readme_blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", block)  # join continuation lines
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("python examples/", "paddle-binbert ")):
                commands.append(line)
    return commands


def localise(text: str, runs: Path, backbone: Path) -> str:
    """The README's paths mapped onto the test's folders."""
    text = text.replace("../shared/data/glue/SST-2", str(FIXTURES / "glue" / "SST-2"))
    text = text.replace("--model_name_or_path minilm", f"--model_name_or_path {backbone}")
    return re.sub(r"(?<![\w/.])runs/", f"{runs}/", text)


def test_the_readme_shows_the_expected_commands():
    commands = readme_commands()
    scripts = [c.split()[1] if c.startswith("python") else " ".join(c.split()[:2]) for c in commands]
    assert scripts == [
        "examples/run_glue.py",
        "examples/task_distill.py",
        "paddle-binbert pack",
        "paddle-binbert predict",
    ], "README commands changed: keep this list (and the runs below) in step with README.md"
    distill = commands[1]
    for flag in (
        "--bi",
        "--pred_distill",
        "--query_distill",
        "--key_distill",
        "--value_distill",
        "--intermediate_distill",
    ):
        assert f" {flag}" in distill  # the BiBERT release's flags


def test_every_readme_command_and_the_api_block_run(tmp_path):
    backbone = tmp_path / "tiny_bert"
    save_tiny_bert(backbone, FIXTURES / "vocab.txt")
    runs = tmp_path / "runs"
    env_python = [sys.executable]
    outputs = []
    for command in readme_commands():
        argv = shlex.split(localise(command, runs, backbone))
        if argv[0] == "python":
            argv = env_python + argv[1:]
        else:  # the console script of `pip install -e .`
            argv = env_python + ["-m", "paddle_binbert.cli"] + argv[1:]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    assert (runs / "sst2_teacher" / "results.json").is_file()
    assert (runs / "sst2_bibert" / "results.json").is_file()
    assert (runs / "sst2_bibert_packed" / "config.json").is_file()
    assert re.search(r"\blabel\b", outputs[-1]), outputs[-1]  # predict printed a Taskflow result

    # the README's Python API block, with the two tensors it leaves to the reader
    (api,) = readme_blocks("python")
    preamble = (
        "import paddle\ninput_ids = paddle.to_tensor([[2, 5, 7, 3]])\ntoken_type_ids = paddle.zeros_like(input_ids)\n"
    )
    code = preamble + localise(api.replace("runs/sst2_bibert", "runs/api_student"), runs, backbone)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (runs / "api_student" / "config.json").is_file()
