#!/usr/bin/env python
"""Distil a fine-tuned BERT teacher into a binarized student on a GLUE task.

Accepts the BiBERT release's command line as is, e.g.::

    python examples/task_distill.py --model_type bert --student_model_name_or_path runs/sst2_teacher \\
        --teacher_model_type bert --teacher_path runs/sst2_teacher --task_name SST-2 \\
        --data_dir glue/SST-2 --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \\
        --num_train_epochs 1 --output_dir runs/sst2_bibert --bi --pred_distill \\
        --query_distill --key_distill --value_distill --intermediate_distill

Run with --help for every flag. The logic lives in paddle_binbert.distill.task_distill.
"""

import sys

from paddle_binbert.distill.task_distill import main

if __name__ == "__main__":
    main(sys.argv[1:])
