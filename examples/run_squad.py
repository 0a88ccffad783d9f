#!/usr/bin/env python
"""Fine-tune a full-precision BERT teacher on SQuAD v1.1.

Example (bundled MiniLM backbone, CPU)::

    python examples/run_squad.py --train_file squad/mini_train-v1.1.json \\
        --predict_file squad/mini_dev-v1.1.json --output_dir runs/squad_teacher \\
        --batch_size 16 --learning_rate 1e-4 --num_train_epochs 2

The best dev checkpoint (by F1) is saved to ``--output_dir`` with predictions.json,
nbest_predictions.json and results.json. Run with --help for every flag; the logic lives in
paddle_binbert.train.finetune (run_squad).

--model_name_or_path may be an already fine-tuned QA checkpoint folder (its QA head is kept).
--length_adaptive (--num_sandwich 2 --length_drop_ratio_bound 0.2 --layer_dropout_prob 0.2) trains
with LengthDrop (Dynamic-TinyBERT) for paddle-binbert search-length --task_name squad afterwards.
"""

import sys

from paddle_binbert.train.cli import squad_main as main

if __name__ == "__main__":
    main(sys.argv[1:])
