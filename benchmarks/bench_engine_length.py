"""Packed 1-bit engine with Dynamic-TinyBERT length configurations: latency against full length.

    nice -n 10 python benchmarks/bench_engine_length.py [--threads 2] [--models minilm-l6,bert-base]

For each model shape (random weights, as ``bench_inference.py``) and each preset (BiBERT 1-1-1,
BiT 1-1-1), the packed model runs through ``paddle_binbert.engine`` (native kernels) at full length
and under length configurations, on random token ids without padding, batch 1 and 32, length 128.
The configurations keep the per-layer fractions of this repository's picks (SST-2
``30-18-9-6-6-6`` of 64, mini-SQuAD ``310-255-231-190-144-118`` of 384), stretched to the model's
layer count. Full-length and configuration calls are interleaved (one of each per round) so that
load from other processes hits both alike; medians per cell. MACs ratios use the formula of
:mod:`paddle_binbert.length_adaptive.costs` at the same length.

Writes ``benchmarks/results/engine_length.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import MODELS  # noqa: E402 - the same model shapes

#: per-layer fractions of the sequence kept (the picks of benchmarks/results/length_sst2 and length_squad)
PROFILES = {
    "SST-2 pick profile": [30 / 64, 18 / 64, 9 / 64, 6 / 64, 6 / 64, 6 / 64],
    "mini-SQuAD pick profile": [310 / 384, 255 / 384, 231 / 384, 190 / 384, 144 / 384, 118 / 384],
}


def stretch(fractions: Sequence[float], num_layers: int, seq_length: int) -> Tuple[int, ...]:
    """Token budgets ``l_i = max(1, round(f(i) * seq_length))`` for ``num_layers`` layers, ``f`` the
    piecewise-linear interpolation of ``fractions`` over the layer index (non-increasing)."""
    import numpy as np

    src = np.linspace(0.0, 1.0, len(fractions))
    dst = np.linspace(0.0, 1.0, num_layers)
    budgets = [max(1, int(round(f * seq_length))) for f in np.interp(dst, src, fractions)]
    for i in range(1, len(budgets)):
        budgets[i] = min(budgets[i], budgets[i - 1])
    return tuple(budgets)


def build_packed(name: str, preset: str, work: Path) -> Path:
    """A random-weight ``BertForSequenceClassification`` of shape ``name``, quantized with ``preset``
    (random biases, BiT alphas initialised on one batch, as ``bench_inference.prepare``), packed."""
    import numpy as np
    import paddle
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification

    from paddle_binbert import quantize_model
    from paddle_binbert.export import pack_model

    paddle.seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30522, num_labels=2, **MODELS[name]))
    quantize_model(model, preset)
    for pname, param in model.named_parameters():
        if pname.endswith(".bias"):
            param.set_value(paddle.randn(param.shape) * 0.02)
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(np.random.default_rng(1).integers(1, 30522, (4, 32)), dtype="int64"))
    model.eval()
    return pack_model(model, work / f"{name}_{preset}")


def time_pair(eng, ids, config, rounds: int) -> Tuple[float, float]:
    """Median ms of the full-length call and of the ``config`` call, interleaved."""
    for _ in range(2):
        eng(ids)
        eng(ids, length_config=config)
    full, cut = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        eng(ids)
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        eng(ids, length_config=config)
        cut.append(time.perf_counter() - start)
    return 1e3 * statistics.median(full), 1e3 * statistics.median(cut)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="engine threads")
    parser.add_argument("--models", default="minilm-l6,bert-base", help=f"comma list of {sorted(MODELS)}")
    parser.add_argument("--presets", default="bibert,bit", help="comma list of bibert, bit")
    parser.add_argument("--seq_length", type=int, default=128, help="input length (no padding)")
    parser.add_argument("--batches", default="1,32", help="comma list of batch sizes")
    parser.add_argument("--rounds", type=int, default=15, help="timed (full, configuration) pairs per cell")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine_length.md"))
    args = parser.parse_args(argv)

    import numpy as np

    from paddle_binbert import engine
    from paddle_binbert.io_utils import write_text_atomic
    from paddle_binbert.length_adaptive.costs import length_config_macs

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    load_before = os.getloadavg()
    rows: List[Dict[str, object]] = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            shape = MODELS[name]
            for preset in args.presets.split(","):
                eng = engine.load(build_packed(name, preset, Path(tmp)), num_threads=args.threads, backend="native")
                for profile, fractions in PROFILES.items():
                    config = stretch(fractions, shape["num_hidden_layers"], args.seq_length)
                    macs = length_config_macs(
                        config, args.seq_length, shape["hidden_size"], shape["intermediate_size"]
                    ) / length_config_macs(
                        None,
                        args.seq_length,
                        shape["hidden_size"],
                        shape["intermediate_size"],
                        num_layers=shape["num_hidden_layers"],
                    )
                    for batch in (int(b) for b in args.batches.split(",")):
                        ids = rng.integers(1, 30522, (batch, args.seq_length)).astype("int64")
                        full, cut = time_pair(eng, ids, config, args.rounds)
                        rows.append(
                            dict(
                                model=name,
                                preset=preset,
                                profile=profile,
                                config="-".join(map(str, config)),
                                macs=macs,
                                batch=batch,
                                full=full,
                                cut=cut,
                            )
                        )
                        print(f"{name} {preset} {rows[-1]['config']} B={batch}: {full:.2f} -> {cut:.2f} ms", flush=True)
    lines = [
        "# Packed 1-bit engine: length configurations vs full length",
        "",
        f"Command: `python benchmarks/bench_engine_length.py --threads {args.threads} --models {args.models} "
        f"--presets {args.presets} --rounds {args.rounds} --seq_length {args.seq_length}`  ",
        f"Machine: {cpu}, {os.cpu_count()} CPUs, engine threads "
        f"{args.threads}; load average before / after: {' '.join(f'{v:.1f}' for v in load_before)} / "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}.  ",
        f"Random weights, random ids, no padding, length {args.seq_length}; native kernels; median of "
        f"{args.rounds} interleaved (full, configuration) pairs.",
        "",
        "| model | preset | configuration | MACs / full | batch | full (ms) | configuration (ms) | speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['preset']} | `{r['config']}` ({r['profile']}) | {r['macs']:.3f} | {r['batch']} | "
            f"{r['full']:.2f} | {r['cut']:.2f} | {r['full'] / r['cut']:.2f}x |"
        )
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
