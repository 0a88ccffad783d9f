#!/usr/bin/env python
"""TinyBERT data augmentation for a GLUE task (writes train_aug.tsv for ``task_distill.py --aug_train``).

    python examples/data_augmentation.py --pretrained_bert_model bert-base-uncased \\
        --glove_embs glove.6B.300d.txt --glue_dir glue/SST-2 --task_name SST-2

Run with --help for every flag. The logic lives in paddle_binbert.data.augment.
"""

import sys

from paddle_binbert.data.augment import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
