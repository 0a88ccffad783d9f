"""The runtime's cached shared library: a truncated or corrupted build is detected (recorded SHA-256,
or a test load in a subprocess) and rebuilt instead of crashing the process; a missing compiler or a
failed build is a clear error. Every build here uses a private PADDLE_BINBERT_CACHE; damaged
libraries are only ever loaded in subprocesses."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from paddlenlp.transformers import BertForSequenceClassification

from paddle_binbert.engine import buildcache
from paddle_binbert.export import pack_model
from paddle_binbert.io_utils import sha256_file
from paddle_binbert.runtime import library
from tests.engine import make_student
from tests.robustness.helpers import run_json_script

RUNNER = textwrap.dedent(
    """
    import json, logging, sys
    import numpy as np
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from paddle_binbert import runtime
    model = runtime.load(sys.argv[1], num_threads=1)
    out = model(np.array([[5, 17, 33, 2, 0, 0], [7, 8, 9, 10, 11, 12]], dtype="int64"))
    print(json.dumps({"logits": out.tolist(), "library": str(runtime.library.library_path())}))
    """
)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return pack_model(make_student("bibert", BertForSequenceClassification), tmp_path_factory.mktemp("lib") / "p")


def _run(packed: Path, cache: Path) -> dict:
    return run_json_script(RUNNER, [str(packed)], cache)


def _private_copy(cache: Path) -> Path:
    """The user's recorded build copied under ``cache`` (saves a compilation); its folder there."""
    source = library.build_dir()
    target = cache / "runtime" / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "*.tmp"))
    assert buildcache.read_record(library.record_path(target)) is not None
    return target


def _reference(packed: Path) -> np.ndarray:
    from paddle_binbert import runtime

    return runtime.load(packed, num_threads=1)(np.array([[5, 17, 33, 2, 0, 0], [7, 8, 9, 10, 11, 12]]))


def test_truncated_library_is_rebuilt(lib, packed, tmp_path):
    target = _private_copy(tmp_path)
    so = target / library.LIBRARY_NAME
    so.write_bytes(so.read_bytes()[: so.stat().st_size // 3])
    result = _run(packed, tmp_path)
    assert "unusable" in result["stderr"] and "truncated or corrupted" in result["stderr"]
    assert result["library"] == str(so)
    np.testing.assert_array_equal(np.float32(result["logits"]), _reference(packed))
    record = buildcache.read_record(library.record_path(target))
    assert record["sha256"] == sha256_file(so)
    # the next process trusts the record: no warning, same result
    again = _run(packed, tmp_path)
    assert "unusable" not in again["stderr"]
    assert again["logits"] == result["logits"]


def test_library_without_record_is_probed(lib, packed, tmp_path):
    target = _private_copy(tmp_path)
    (target / library.RECORD_NAME).unlink()
    assert library.check_cached_build(target) is None  # a good library passes the probe and gets a record
    assert buildcache.read_record(library.record_path(target)) is not None
    (target / library.RECORD_NAME).unlink()
    so = target / library.LIBRARY_NAME
    so.write_bytes(so.read_bytes()[:4096])
    problem = library.check_cached_build(target)
    assert problem is not None and "test load" in problem
    result = _run(packed, tmp_path)
    assert "unusable" in result["stderr"]
    np.testing.assert_array_equal(np.float32(result["logits"]), _reference(packed))


@pytest.fixture
def fresh_library_state(monkeypatch, tmp_path):
    """No library loaded yet in this process's view, and a private cache."""
    monkeypatch.setattr(library, "_LIBRARY", None)
    monkeypatch.setattr(library, "_ERROR", None)
    monkeypatch.setenv("PADDLE_BINBERT_CACHE", str(tmp_path / "cache"))


@pytest.mark.usefixtures("fresh_library_state")
def test_no_compiler_is_a_clear_error(monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(library.RuntimeUnavailableError, match="no C\\+\\+ compiler") as info:
        library.load_library()
    assert "apt-get install g++" in info.value.advice


@pytest.mark.usefixtures("fresh_library_state")
def test_failed_build_says_why(monkeypatch, tmp_path):
    fake = tmp_path / "fake-g++"
    fake.write_text("#!/bin/sh\necho 'binbert_capi.cc:1: error: this compiler is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    with pytest.raises(library.RuntimeUnavailableError, match="compiling the library") as info:
        library.load_library()
    assert "this compiler is broken" in str(info.value)
    assert not any(library.build_dir().glob("*.so")) and not any(library.build_dir().glob("*.tmp"))
