"""Install paddle_binbert: `pip install -r requirements.txt && pip install -e .`."""

from setuptools import find_packages, setup

setup(
    name="paddle_binbert",
    version="0.1.0",
    description="Fully binarized BERT (BiBERT, BiT, BinaryBERT, Dynamic-TinyBERT) on PaddlePaddle/PaddleNLP",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["paddle_binbert", "paddle_binbert.*"]),
    package_data={"paddle_binbert": ["configs/*/*.yaml", "engine/csrc/*.cc"]},
    python_requires=">=3.9",
    # Versions are pinned in requirements.txt (the stack known to work together on CPU);
    # here only the names, so a GPU user can bring paddlepaddle-gpu instead.
    install_requires=["paddlenlp", "numpy", "scipy", "scikit-learn", "pyyaml", "safetensors", "tqdm"],
    entry_points={"console_scripts": ["paddle-binbert=paddle_binbert.cli:main"]},
)
