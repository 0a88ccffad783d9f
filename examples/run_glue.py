#!/usr/bin/env python
"""Fine-tune a full-precision BERT teacher on one GLUE task.

Example (SST-2, bundled MiniLM backbone, CPU)::

    python examples/run_glue.py --task_name SST-2 --data_dir glue/SST-2 --output_dir runs/sst2_teacher \\
        --max_seq_length 64 --batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 --eval_steps 500

The best dev checkpoint (by the task's main metric: CoLA mcc, STS-B mean of Pearson/Spearman,
others accuracy) is reloaded at the end and saved to ``--output_dir`` as a PaddleNLP checkpoint
folder (config.json, model_state.pdparams, tokenizer files) together with ``results.json``.
STS-B is trained as regression (one output, MSE).

With ``--length_adaptive`` the model is trained with LengthDrop (Dynamic-TinyBERT): per step the
full model, the smallest and ``--num_sandwich`` random token-budget sub-models; search its budgets
afterwards with ``paddle-binbert search-length`` (examples/search_length.py).

Run with --help for every flag. The logic lives in paddle_binbert.train.finetune (run_glue).
"""

import sys

from paddle_binbert.train.cli import build_glue_parser as build_parser
from paddle_binbert.train.cli import glue_main as main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main(sys.argv[1:])
