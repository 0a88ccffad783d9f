#!/usr/bin/env python
"""Recreate the bundled SST-2 demo sample ``examples/data/sst2_sample``.

``train.tsv``: the header plus a deterministic random sample (``random.Random(seed)``, rows kept
in file order) of the full SST-2 ``train.tsv``; ``dev.tsv``: a byte-for-byte copy of the full dev
set (872 rows). Rows are copied unchanged (same format as GLUE, trailing spaces included).

    python examples/data/make_sst2_sample.py --src /path/to/glue/SST-2
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))


def make_sample(src: str, out: str, num_train: int = 2000, seed: int = 13) -> None:
    """Write ``out/train.tsv`` (header + ``num_train`` sampled rows) and ``out/dev.tsv`` (full copy)."""
    with open(os.path.join(src, "train.tsv"), "rb") as handle:
        lines = handle.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    header, rows = lines[0], lines[1:]
    if header.strip() != b"sentence\tlabel":
        raise ValueError(f"{src}/train.tsv does not look like SST-2 (header {header!r})")
    if num_train > len(rows):
        raise ValueError(f"asked for {num_train} rows, {src}/train.tsv has {len(rows)}")
    chosen = sorted(random.Random(seed).sample(range(len(rows)), num_train))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "train.tsv"), "wb") as handle:
        handle.write(b"\n".join([header] + [rows[i] for i in chosen]) + b"\n")
    shutil.copyfile(os.path.join(src, "dev.tsv"), os.path.join(out, "dev.tsv"))


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default="/work/shared/data/glue/SST-2", help="folder with the full SST-2 files")
    parser.add_argument("--out", default=os.path.join(HERE, "sst2_sample"), help="output folder")
    parser.add_argument("--num_train", type=int, default=2000, help="number of training rows to sample")
    parser.add_argument("--seed", type=int, default=13, help="random seed of the sample")
    args = parser.parse_args(argv)
    make_sample(args.src, args.out, args.num_train, args.seed)
    print(f"wrote {args.out}/train.tsv ({args.num_train} rows) and dev.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
