"""An installed (non-editable) package finds its method and task files: setup.py ships the top-level
``configs/`` as ``paddle_binbert/bundled_configs`` next to the quantization presets."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_built_package_carries_configs_and_finds_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("configs", "paddle_binbert"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    lib = tmp_path / "lib"
    build = [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)]
    done = subprocess.run(build, cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    bundled = lib / "paddle_binbert" / "bundled_configs"
    methods = sorted(p.name for p in (bundled / "methods").glob("*.yaml"))
    assert methods == sorted(p.name for p in (ROOT / "configs" / "methods").glob("*.yaml"))
    assert (bundled / "tasks" / "sst2.yaml").is_file()
    assert (lib / "paddle_binbert" / "configs" / "quant" / "bibert.yaml").is_file()
    # run from elsewhere, with only the built package on the path: no checkout configs/ beside it
    probe = (
        "from paddle_binbert.train.defaults import config_dir, training_defaults\n"
        "from paddle_binbert.distill.recipes import get_method\n"
        "print(config_dir())\n"
        "print(get_method('bibert').quant_preset, training_defaults('bibert', 'SST-2')['batch_size'])\n"
    )
    env = {"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    folder, values = done.stdout.strip().splitlines()[-2:]
    assert Path(folder) == bundled and values == "bibert 16"
