"""Worker of ``test_data_parallel.py``, started by ``python -m paddle.distributed.launch``: runs the
training command lines given as JSON (``[["run_glue" | "task_distill", argv], ...]``) one after the
other in this rank's process, so that one launch (one process start-up) covers them all."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from paddle_binbert.distill import task_distill  # noqa: E402
from tests.tiny import load_run_glue  # noqa: E402

ENTRY_POINTS = {"run_glue": lambda argv: load_run_glue().main(argv), "task_distill": task_distill.main}

if __name__ == "__main__":
    for kind, argv in json.loads(Path(sys.argv[1]).read_text()):
        ENTRY_POINTS[kind](argv)
