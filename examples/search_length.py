#!/usr/bin/env python
"""Search per-layer token budgets for a length-adaptive checkpoint (Dynamic-TinyBERT / LAT).

Example (a checkpoint trained with ``run_glue.py --length_adaptive``)::

    python examples/search_length.py --checkpoint runs/sst2_la --task_name SST-2 --data_dir glue/SST-2 \\
        --output_dir runs/sst2_la/search --max_seq_length 64 --evo_iter 10 --measure

SQuAD v1.1 (a BertForQuestionAnswering trained with LengthDrop; windows padded to 384 tokens, score = F1)::

    python examples/search_length.py --checkpoint runs/squad_la --task_name squad \
        --predict_file squad/mini_dev-v1.1.json --max_seq_length 384 --doc_stride 128 --max_query_length 64 \
        --output_dir runs/squad_la/search --max_eval_examples 300 --measure

Writes ``search_cache.json`` (rerun to resume), ``pareto.csv`` / ``pareto.md`` / ``pareto.png``,
``all_configs.csv``, ``pick.json`` and with ``--measure`` ``speed.md``. Same as
``paddle-binbert search-length``; every flag is described by ``--help``.
"""

import sys

from paddle_binbert.length_adaptive.search import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
