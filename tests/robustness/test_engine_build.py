"""A damaged cached engine build is detected and rebuilt instead of crashing the build ("Bus error")
and falling back to the simulated backend on every run; a build that really fails says why.

The builds run in a private ``PADDLE_BINBERT_CACHE`` (never the user's cache) and in subprocesses, so
that this process never maps a damaged library."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert import engine
from paddle_binbert.engine import buildcache
from paddle_binbert.engine import ops as engine_ops
from paddle_binbert.export import pack_model
from paddle_binbert.io_utils import sha256_file
from tests.engine import make_student
from tests.robustness.helpers import run_json_script

# loads the packed model with backend "auto" and prints the backend and the logits as JSON
RUNNER = textwrap.dedent(
    """
    import json, logging, sys
    import numpy as np
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from paddle_binbert import engine
    eng = engine.load(sys.argv[1], num_threads=1)
    ids = np.array([[5, 17, 33, 2, 0, 0], [7, 8, 9, 10, 11, 12]], dtype="int64")
    out = eng(ids)
    print(json.dumps({"backend": type(eng).__name__, "logits": np.asarray(out).tolist()}))
    """
)


def _require_compiler():
    if sys.platform != "linux" or engine_ops.find_compiler() is None:
        pytest.skip("the native engine needs Linux and a C++ compiler; none here, so no build to damage")


def _run(packed: Path, cache: Path) -> dict:
    return run_json_script(RUNNER, [str(packed)], cache, unset=["PADDLE_BINBERT_ENGINE"])


def _private_build_dir(cache: Path) -> Path:
    """The build folder the subprocesses use (same key as this process, under ``cache``)."""
    return cache / "engine" / engine_ops.build_dir().name


def _reuse_user_build(target: Path) -> None:
    """Copy the user's cached build when it is recorded as good (saves a compilation); else the
    first subprocess compiles it."""
    source = engine_ops.build_dir()
    lib = engine_ops.library_path(source)
    record = buildcache.read_record(engine_ops.record_path(source))
    if record is None or not lib.is_file():
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(lib.parent, target / lib.parent.name, ignore=shutil.ignore_patterns("*.lock"))
    copy = engine_ops.library_path(target)
    if sha256_file(copy) != record["sha256"]:  # changed while copying: build afresh
        shutil.rmtree(copy.parent)


def test_truncated_cached_library_is_rebuilt(tmp_path):
    _require_compiler()
    packed = pack_model(make_student("bibert", BertForSequenceClassification), tmp_path / "packed")
    cache = tmp_path / "cache"
    target = _private_build_dir(cache)
    _reuse_user_build(target)

    first = _run(packed, cache)
    assert first["backend"] == "PackedBertEngine", first["stderr"][-2000:]
    lib = engine_ops.library_path(target)
    record = json.loads((lib.parent / engine_ops.RECORD_NAME).read_text())
    size = lib.stat().st_size
    assert record["size"] == size

    with open(lib, "r+b") as fh:  # a truncated library, as a full disk or a killed build leaves it
        fh.truncate(size // 3)
    second = _run(packed, cache)
    assert "Bus error" not in second["stderr"]
    assert "unusable" in second["stderr"] and "truncated or corrupted" in second["stderr"]
    assert second["backend"] == "PackedBertEngine", second["stderr"][-2000:]
    assert second["logits"] == first["logits"]
    rebuilt = json.loads((lib.parent / engine_ops.RECORD_NAME).read_text())
    assert rebuilt["size"] == lib.stat().st_size > size // 3 and rebuilt["sha256"] == sha256_file(lib)

    third = _run(packed, cache)  # the repaired build is reused quietly
    assert third["backend"] == "PackedBertEngine" and "unusable" not in third["stderr"]
    assert third["logits"] == first["logits"]


def test_damaged_library_without_record_fails_the_probe(tmp_path):
    """Without a checksum record (an interrupted build, a build of an older version) the library is
    test-loaded in a subprocess; a truncated one is reported (SIGBUS) and never loaded here."""
    _require_compiler()
    target = tmp_path / "engine" / "key"
    lib = engine_ops.library_path(target)
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 4000)  # an ELF header and nothing else
    problem = engine_ops.check_cached_build(target)
    assert problem is not None and "test load" in problem and str(lib) in problem
    assert not (lib.parent / engine_ops.RECORD_NAME).exists()
    engine_ops.discard_build(target)
    assert not lib.parent.exists() and engine_ops.check_cached_build(target) is None


def test_failed_build_falls_back_and_says_why(tmp_path, monkeypatch, caplog):
    """A compiler error: ``auto`` falls back to the simulated backend and the warning carries the
    compiler's message, not the advice to install a compiler (one is installed)."""
    _require_compiler()
    monkeypatch.setenv("PADDLE_BINBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engine_ops, "_MODULE", None)
    monkeypatch.setattr(engine_ops, "_ERROR", None)
    monkeypatch.setattr(engine_ops, "CXX_FLAGS", engine_ops.CXX_FLAGS + ["-fno-such-option-binbert"])
    packed = pack_model(make_student("bwn", BertForSequenceClassification), tmp_path / "packed")
    with caplog.at_level(logging.WARNING, logger="paddle_binbert.engine"):
        eng = engine.load(packed, backend="auto")
    assert isinstance(eng, engine.SimulatedBertEngine)
    message = "\n".join(r.getMessage() for r in caplog.records if "simulated backend" in r.getMessage())
    assert "-fno-such-option-binbert" in message  # the compiler's own error
    assert "build.log" in message and "apt-get install" not in message
    with pytest.raises(engine.EngineUnavailableError, match="fno-such-option-binbert"):
        engine_ops.load_ops()
    monkeypatch.setattr(engine_ops, "_ERROR", None)  # monkeypatch restores _MODULE afterwards
