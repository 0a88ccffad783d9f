#!/usr/bin/env python
"""Distil a fine-tuned BERT teacher into a binarized student on a GLUE task.

Accepts the BiBERT release's command line as is, e.g.::

    python examples/task_distill.py --model_type bert --student_model_name_or_path runs/sst2_teacher \\
        --teacher_model_type bert --teacher_path runs/sst2_teacher --task_name SST-2 \\
        --data_dir glue/SST-2 --max_seq_length 64 --batch_size 32 --learning_rate 1e-4 \\
        --num_train_epochs 1 --output_dir runs/sst2_bibert --bi --pred_distill \\
        --query_distill --key_distill --value_distill --intermediate_distill

Run with --help for every flag. The logic lives in paddle_binbert.distill.task_distill.
--task_name squad (with --train_file / --predict_file) distils a SQuAD student instead.
--length_adaptive (--num_sandwich 2 --length_drop_ratio_bound 0.2 --layer_dropout_prob 0.2) distils
with LengthDrop (Dynamic-TinyBERT): the full student gets the distillation loss, the token-budget
sub-models the KL to the full student; in a chain (--distill_chain, --method binarybert) only the
final stage.
"""

import sys

from paddle_binbert.distill.task_distill import main

if __name__ == "__main__":
    main(sys.argv[1:])
