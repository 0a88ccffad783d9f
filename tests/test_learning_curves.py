"""benchmarks/learning_curves.py (stages laid end to end, lineage between runs) and
benchmarks/sync_curves.sh (the plot keeps runs whose folders are gone)."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import load_script

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT / "tests" / "fixtures" / "glue" / "SST-2"
HEADER = "step,examples,wall_minutes,epoch,acc\n"


def _script():
    return load_script("benchmarks/learning_curves.py", "learning_curves")


def _curve(folder: Path, points) -> None:
    """learning_curve.csv with rows (step, acc) at batch 10 and one minute per 10 steps."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{s},{10 * s},{s / 10},{s / 100},{acc}\n" for s, acc in points)
    (folder / "learning_curve.csv").write_text(HEADER + rows)


def _read(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def runs(tmp_path):
    """A two-stage chain, a run continued from its first stage, and one continued from that."""
    _curve(tmp_path / "chain" / "stage1_32-32-32", [(10, 0.8), (20, 0.9), (30, 0.85)])
    _curve(tmp_path / "chain" / "stage2_1-1-1", [(10, 0.6), (20, 0.7)])
    _curve(tmp_path / "cont", [(5, 0.75), (10, 0.78)])
    _curve(tmp_path / "cont2", [(5, 0.5)])
    return tmp_path


def test_stages_are_laid_end_to_end(runs):
    rows = _script().collect_run("chain", str(runs / "chain"), "acc")
    assert [(r["stage"], r["stage_step"], r["step"]) for r in rows] == [
        ("stage1_32-32-32", 10, 10),
        ("stage1_32-32-32", 20, 20),
        ("stage1_32-32-32", 30, 30),
        ("stage2_1-1-1", 10, 40),
        ("stage2_1-1-1", 20, 50),
    ]
    assert [r["examples"] for r in rows] == [100, 200, 300, 400, 500]


def test_a_continued_run_starts_where_its_parent_kept_its_student(runs, tmp_path):
    s = _script()
    rows = [r for label in ("chain", "cont", "cont2") for r in s.collect_run(label, str(runs / label), "acc")]
    lineage_file = tmp_path / "lineage.yaml"
    # cont2 is listed first: parents are placed before their children whatever the order
    lineage_file.write_text("cont2: {from: cont, at_step: 5}\ncont: {from: chain/stage1_32-32-32}\n")
    rows, starts = s.apply_lineage(rows, s.read_lineage(str(lineage_file)))
    cont = [r for r in rows if r["run"] == "cont"]
    # default start: the parent stage's first best evaluation (step 20, acc 0.9), not its last one
    assert starts["cont"]["stage_step"] == 20 and starts["cont"]["value"] == pytest.approx(0.9)
    assert [(r["step"], r["examples"]) for r in cont] == [(25, 250), (30, 300)]
    assert cont[0]["wall_minutes"] == pytest.approx(2.5)
    # a chain of continuations adds up: cont2 starts at cont's step 5, itself at chain's step 20
    cont2 = [r for r in rows if r["run"] == "cont2"]
    assert [(r["step"], r["examples"]) for r in cont2] == [(30, 300)]
    assert [r["step"] for r in rows if r["run"] == "chain"] == [10, 20, 30, 40, 50]  # unchanged


@pytest.mark.parametrize(
    "text, message",
    [
        ("cont: {from: nowhere}\n", "not among the runs"),
        ("cont: {from: chain/stage9_1-1-1}\n", "no evaluated stage"),
        ("cont: {from: chain/stage1_32-32-32, at_step: 15}\n", "no evaluation at step 15"),
        ("cont: {from: cont2}\ncont2: {from: cont}\n", "lineage cycle"),
        ("cont: {from: chain, at_step: -3}\n", "positive integer"),
        ("cont: {from: chain, step: 3}\n", "unknown field"),
        ("cont: chain\n", "expected {from"),
        ("[1, 2]\n", "expected a mapping"),
        ("cont: {from: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_lineage_files_are_refused_with_the_reason(runs, tmp_path, text, message):
    s = _script()
    rows = [r for label in ("chain", "cont", "cont2") for r in s.collect_run(label, str(runs / label), "acc")]
    path = tmp_path / "lineage.yaml"
    path.write_text(text)
    with pytest.raises(s.LineageError, match=message):
        s.apply_lineage(rows, s.read_lineage(str(path)))


def test_nan_evaluations_are_not_a_best_start_and_unknown_labels_are_reported(runs, tmp_path, capsys):
    s = _script()
    _curve(tmp_path / "collapsed", [(10, float("nan")), (20, 0.4), (30, 0.3)])
    rows = [r for label in ("collapsed", "cont") for r in s.collect_run(label, str(tmp_path / label), "acc")]
    path = tmp_path / "lineage.yaml"
    path.write_text("cont: {from: collapsed}\ntypo: {from: collapsed}\n")
    rows, starts = s.apply_lineage(rows, s.read_lineage(str(path)))
    assert starts["cont"]["stage_step"] == 20  # the best real value, not the NaN at step 10
    assert "'typo', which is not among the runs" in capsys.readouterr().err
    _curve(tmp_path / "all_nan", [(10, float("nan"))])
    rows = [r for label in ("all_nan", "cont") for r in s.collect_run(label, str(tmp_path / label), "acc")]
    path.write_text("cont: {from: all_nan}\n")
    with pytest.raises(s.LineageError, match="NaN"):
        s.apply_lineage(rows, s.read_lineage(str(path)))
    path.write_bytes(b"cont: {from: \xff}\n")
    with pytest.raises(s.LineageError, match="not UTF-8 text"):
        s.read_lineage(str(path))


def test_cli_writes_the_csv_and_plot_and_refuses_a_bad_lineage(runs, tmp_path, capsys):
    s = _script()
    out = tmp_path / "out"
    lineage_file = tmp_path / "lineage.yaml"
    lineage_file.write_text("cont: {from: chain/stage1_32-32-32, at_step: 30}\n")
    argv = ["--task_name", "SST-2", "--data_dir", str(SST2), "--run", f"chain={runs / 'chain'}"]
    argv += ["--run", f"cont={runs / 'cont'}", "--out", str(out), "--lineage", str(lineage_file)]
    assert s.main(argv) == 0
    rows = _read(out / "sst2.csv")
    assert [(r["run"], r["stage_step"], r["step"]) for r in rows][-2:] == [("cont", "5", "35"), ("cont", "10", "40")]
    assert (out / "sst2.png").stat().st_size > 1000
    lineage_file.write_text("cont: {from: chain/stage1_32-32-32, at_step: 31}\n")
    before = (out / "sst2.csv").read_text()
    with pytest.raises(SystemExit):
        s.main(argv)
    assert "no evaluation at step 31" in capsys.readouterr().err
    assert (out / "sst2.csv").read_text() == before  # nothing rewritten


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_sync_keeps_recorded_runs_in_the_plot_when_their_folders_are_gone(runs, tmp_path):
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for name in ("sync_curves.sh", "learning_curves.py"):
        shutil.copy(ROOT / "benchmarks" / name, repo / "benchmarks" / name)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t")
    env.update(GIT_COMMITTER_EMAIL="t@t", PYTHONPATH=str(ROOT), PY=sys.executable)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    glue = tmp_path / "glue"
    shutil.copytree(SST2, glue / "SST-2")
    run_root = tmp_path / "runs_here"
    shutil.copytree(runs / "chain", run_root / "sst2_chain")
    shutil.copytree(runs / "cont", run_root / "sst2_cont")
    dest = repo / "benchmarks" / "results" / "sst2_students"
    dest.mkdir(parents=True)
    (dest / "lineage.yaml").write_text("cont: {from: chain/stage1_32-32-32}\n")

    def sync():
        env.update(RUNS=str(run_root), GLUE=str(glue))
        subprocess.run(
            ["bash", "benchmarks/sync_curves.sh", "SST-2", "sst2", "sst2_students", "--once"],
            cwd=repo,
            check=True,
            env=env,
            capture_output=True,
        )

    sync()
    assert {r["run"] for r in _read(dest / "sst2.csv")} == {"chain", "cont"}
    shutil.rmtree(run_root / "sst2_chain")  # the chain's folder is lost; a new evaluation of cont arrives
    _curve(run_root / "sst2_cont", [(5, 0.75), (10, 0.78), (15, 0.8)])
    sync()
    rows = _read(dest / "sst2.csv")
    assert {r["run"] for r in rows} == {"chain", "cont"}  # the lost run is still drawn from its record
    assert [r["step"] for r in rows if r["run"] == "cont"] == ["25", "30", "35"]
    log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, env=env).stdout
    assert log.count("sst2_students: learning curves") == 2
