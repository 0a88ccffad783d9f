"""Install paddle_binbert.

Full stack (training, distillation, Taskflow, the Paddle engine): ``pip install -r requirements.txt``
then ``pip install --no-deps -e .`` (pinned versions), or ``pip install -e .[paddle]`` (names only).

Runtime only (run packed 1-bit models with ``paddle_binbert.runtime`` and serve them with
``paddle-binbert serve``; no Paddle, no PaddleNLP):
``pip install -e .[runtime]`` or ``pip install -r requirements-runtime.txt`` (pinned).
"""

from setuptools import find_packages, setup

# What paddle_binbert.runtime needs: the base install. Versions are pinned in requirements*.txt (the
# stack known to work together on CPU); here only the names, so a GPU user can bring paddlepaddle-gpu.
RUNTIME = ["numpy", "safetensors", "tokenizers"]
# `paddle-binbert serve` (paddle_binbert.serve): the runtime behind FastAPI + uvicorn; at least the
# versions it is tested with (pinned in requirements-runtime.txt).
SERVE = ["fastapi>=0.165.0", "uvicorn>=0.55.0"]
PADDLE = ["paddlenlp", "scipy", "scikit-learn", "pyyaml", "tqdm"]

setup(
    name="paddle_binbert",
    version="0.1.0",
    description="Fully binarized BERT (BiBERT, BiT, BinaryBERT, Dynamic-TinyBERT) on PaddlePaddle/PaddleNLP",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # the top-level configs/ (method and task YAML) ships inside the wheel as paddle_binbert/bundled_configs,
    # so a non-editable install finds it (paddle_binbert.train.defaults.config_dir)
    packages=find_packages(include=["paddle_binbert", "paddle_binbert.*"]) + ["paddle_binbert.bundled_configs"],
    package_dir={"paddle_binbert.bundled_configs": "configs"},
    package_data={
        "paddle_binbert.bundled_configs": ["*/*.yaml"],
        "paddle_binbert": [
            "configs/*/*.yaml",
            "engine/csrc/*.cc",
            "engine/csrc/*.h",
            "runtime/csrc/*.cc",
        ]
    },
    python_requires=">=3.9",
    install_requires=RUNTIME,
    extras_require={"runtime": SERVE, "serve": SERVE, "paddle": PADDLE, "all": PADDLE + SERVE},
    entry_points={"console_scripts": ["paddle-binbert=paddle_binbert.cli:main"]},
)
