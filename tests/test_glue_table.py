"""benchmarks/glue_table.py: the grid scheduler (teachers before their students, --jobs, failures,
resume by skipping finished cells) and the committed per-cell records, with a fake interpreter that
writes each cell's results.json instead of training."""

import json
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tiny import load_script

GLUE = Path(__file__).resolve().parent / "fixtures" / "glue"

FAKE = textwrap.dedent(
    """\
    #!{python}
    # stands in for the interpreter: logs "start/end <task> <method>" and writes results.json
    import json, os, sys, time
    argv = sys.argv[1:]
    opt = lambda k: argv[argv.index(k) + 1]
    out, task = opt("--output_dir"), opt("--task_name")
    method = os.path.basename(out)
    log = os.environ["FAKE_LOG"]
    with open(log, "a") as f:
        f.write(f"start {{task}} {{method}}\\n")
    time.sleep(0.3)
    # FAKE_WAIT_FOR: a log line to wait for (up to 30 s), so that "two jobs at once" does not
    # depend on how fast a loaded machine starts the second process
    deadline = time.time() + 30
    while os.environ.get("FAKE_WAIT_FOR") and time.time() < deadline:
        with open(log) as f:
            if os.environ["FAKE_WAIT_FOR"] in f.read().splitlines():
                break
        time.sleep(0.05)
    if method in os.environ.get("FAKE_FAIL", "").split(","):
        sys.exit(3)
    if method == "teacher":
        res = {{"dev": {{task: {{"accuracy": 0.75, "f1": 0.8}}}}, "main_metric": "accuracy", "global_steps": 9}}
    else:
        assert "--teacher_path" in argv and os.path.isfile(os.path.join(opt("--teacher_path"), "results.json"))
        res = {{"student": {{"accuracy": 0.5}}, "main_metric": "accuracy", "global_steps": 3,
               "student_size_mib": 3.75, "num_train_examples": 16}}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f)
    with open(log, "a") as f:
        f.write(f"end {{task}} {{method}}\\n")
    """
)


@pytest.fixture()
def grid(tmp_path, monkeypatch):
    module = load_script("benchmarks/glue_table.py", "glue_table_bench")
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setattr(module.time, "sleep", lambda s: None)  # the scheduler's poll interval

    def run(*extra):
        argv = ["--glue_dir", str(GLUE), "--runs_dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
                "--python", str(fake), "--methods", "teacher,bwn,bit", *extra]
        return module.main(argv)

    def calls():
        return log.read_text().splitlines() if log.is_file() else []

    return module, run, calls, tmp_path


def test_students_start_after_their_teacher_and_two_run_at_once(grid, monkeypatch):
    module, run, calls, tmp = grid
    monkeypatch.setenv("FAKE_WAIT_FOR", "start RTE teacher")
    assert run("--tasks", "MRPC,RTE", "--jobs", "2") == 0
    lines = calls()
    for task in ("MRPC", "RTE"):
        teacher_end = lines.index(f"end {task} teacher")
        assert lines.index(f"start {task} bwn") > teacher_end
        assert lines.index(f"start {task} bit") > teacher_end
    # two jobs: the second teacher starts before the first one ends
    assert lines.index("start RTE teacher") < lines.index("end MRPC teacher")
    md = (tmp / "out" / "glue_table.md").read_text()
    assert "| BWN (BinaryBERT baseline) | 1-1-1 |" in md and "50.0" in md and "75.0" in md
    rec = json.loads((tmp / "out" / "glue_table_cells" / "RTE" / "bit.json").read_text())
    assert rec["value"] == pytest.approx(50.0) and rec["steps"] == 3


def test_finished_cells_are_skipped_and_records_survive_without_run_folders(grid):
    module, run, calls, tmp = grid
    assert run("--tasks", "MRPC") == 0
    n = len(calls())
    assert run("--tasks", "MRPC") == 0
    assert len(calls()) == n  # nothing rerun
    import shutil

    shutil.rmtree(tmp / "runs")  # a fresh clone: only the committed records are left
    assert run("--tasks", "MRPC", "--table_only") == 0
    csv_text = (tmp / "out" / "glue_table.csv").read_text()
    assert "MRPC,bwn,1-1-1" in csv_text and "MRPC,teacher,32-32-32" in csv_text
    # a new student cell needs the teacher's checkpoint, which the record alone does not give
    (tmp / "out" / "glue_table_cells" / "MRPC" / "bit.json").unlink()
    assert run("--tasks", "MRPC") == 0
    assert calls()[n:] == ["start MRPC teacher", "end MRPC teacher", "start MRPC bit", "end MRPC bit"]


def test_a_failed_teacher_skips_its_students_and_the_exit_code_says_so(grid, monkeypatch):
    module, run, calls, tmp = grid
    monkeypatch.setenv("FAKE_FAIL", "teacher")
    assert run("--tasks", "RTE") == 1
    assert calls() == ["start RTE teacher"]
    assert not (tmp / "out" / "glue_table_cells" / "RTE").exists()


def test_core_slots_are_disjoint_when_the_cpus_allow():
    module = load_script("benchmarks/glue_table.py", "glue_table_bench")
    slots = module.core_slots(2, 1)
    if len(set(sum(slots, []))) == 2:
        assert slots[0] != slots[1]
    assert all(len(s) == 1 for s in slots)
