#!/usr/bin/env python
"""Distil a fine-tuned BERT QA teacher into a binarized student on SQuAD v1.1.

Same flags as task_distill.py (BiBERT release) plus the SQuAD ones, e.g. BiBERT 1-1-1::

    python examples/squad_distill.py --teacher_path runs/squad_teacher \\
        --train_file squad/mini_train-v1.1.json --predict_file squad/mini_dev-v1.1.json \\
        --output_dir runs/squad_bibert --bi --pred_distill --query_distill --key_distill \\
        --value_distill --intermediate_distill

Run with --help for every flag. The logic lives in paddle_binbert.distill.squad_distill.
"""

import sys

from paddle_binbert.distill.squad_distill import main

if __name__ == "__main__":
    main(sys.argv[1:])
