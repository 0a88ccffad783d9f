"""Where is a GLUE student's information: in the [CLS] vector or spread over the tokens?

For each checkpoint (FP or quantized, any folder :func:`paddle_binbert.checkpoints.load_model`
reads), the last hidden states of the dev set are pooled two ways, the [CLS] vector and the mean
over real tokens, and a ridge regression (STS-B) or logistic regression (classification) is fitted
on them with 5-fold cross-validation over the dev examples. The score of each pooling says how much
of the task a head on that pooling could read out of the frozen encoder; the checkpoint's own head
is scored too. A diagnostic for issue 23 (all-MiniLM-L6-v2 was trained with mean pooling):

    python benchmarks/probe_pooling.py --task_name STS-B --data_dir ../shared/data/glue/STS-B \
        --max_seq_length 128 --model teacher=../runs/stsb_teacher --model stage2=../runs/... \
        --out benchmarks/results/stsb_students/diagnostics/pooling_probe.md

scikit-learn fits the probes (a test dependency already); the metrics are the project's GLUE metrics.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np


def encode(model, tokenizer, features: List[Dict[str, Any]], batch: int) -> Dict[str, np.ndarray]:
    """The checkpoint's own outputs and the [CLS] / masked-mean pooled last hidden states of GLUE
    ``features`` (:func:`paddle_binbert.data.glue.convert_examples_to_features`), padded per batch by
    the project's GLUE collator."""
    import paddle

    from paddle_binbert.data.glue import glue_collator

    collate = glue_collator(tokenizer)
    cls, mean, head = [], [], []
    with paddle.no_grad():
        for i in range(0, len(features), batch):
            enc = collate([{k: f[k] for k in ("input_ids", "token_type_ids")} for f in features[i : i + batch]])
            mask = enc["attention_mask"].astype("float32")
            out = model(
                enc["input_ids"], token_type_ids=enc["token_type_ids"], attention_mask=mask, output_hidden_states=True
            )
            logits, hidden = out[0], out[1][-1]
            m = mask.unsqueeze(-1)
            cls.append(hidden[:, 0].numpy())
            mean.append(((hidden * m).sum(1) / m.sum(1)).numpy())
            head.append(logits.numpy())
    return {"cls": np.concatenate(cls), "mean": np.concatenate(mean), "head": np.concatenate(head)}


def probe(features: np.ndarray, labels: np.ndarray, regression: bool) -> float:
    """5-fold cross-validated Pearson (regression) or accuracy of a linear probe on ``features``."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from paddle_binbert.data.metrics import accuracy, pearson_correlation

    folds = KFold(5, shuffle=True, random_state=0)
    if regression:
        est = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        return pearson_correlation(cross_val_predict(est, features, labels, cv=folds), labels)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return accuracy(cross_val_predict(est, features, labels, cv=folds), labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_name", required=True, help="SST-2 or STS-B")
    p.add_argument("--data_dir", required=True, help="folder with dev.tsv")
    p.add_argument("--model", action="append", required=True, metavar="LABEL=DIR", help="checkpoint (repeatable)")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_examples", type=int, default=0, help="first N dev examples (0: all)")
    p.add_argument("--out", help="markdown file for the table (printed either way)")
    args = p.parse_args()

    from paddlenlp.transformers import BertTokenizer

    from paddle_binbert.checkpoints import load_model
    from paddle_binbert.data.glue import get_task_spec, load_glue_features
    from paddle_binbert.data.metrics import compute_glue_metrics

    regression = get_task_spec(args.task_name).is_regression
    metric = "Pearson" if regression else "accuracy"
    rows = []
    for spec in args.model:
        label, _, path = spec.partition("=")
        start = time.time()
        model = load_model(path)
        model.eval()
        tokenizer = BertTokenizer.from_pretrained(path)
        features = load_glue_features(
            args.data_dir, args.task_name, "dev", tokenizer, args.max_seq_length, args.max_examples or None
        )
        labels = np.array([f["labels"] for f in features])
        enc = encode(model, tokenizer, features, args.batch_size)
        own = compute_glue_metrics(args.task_name, enc["head"], labels)["pearson" if regression else "acc"]
        rows.append((label, path, own, probe(enc["cls"], labels, regression), probe(enc["mean"], labels, regression)))
        print(
            f"{label}: own head {own:.4f}, [CLS] probe {rows[-1][3]:.4f}, mean probe {rows[-1][4]:.4f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    lines = [
        f"# Linear probes of the last hidden state, {args.task_name} dev ({len(labels)} examples)",
        "",
        "Command: `python benchmarks/probe_pooling.py "
        + " ".join(f"--model {m}" for m in args.model)
        + f" --task_name {args.task_name} --max_seq_length "
        f"{args.max_seq_length}`  ",
        f"5-fold cross-validated {metric} over the dev examples of a linear probe (standardised features; "
        f"{'ridge, alpha by inner CV' if regression else 'logistic regression'}) on the [CLS] vector and on "
        "the mean over real tokens; the checkpoint's own head for reference.",
        "",
        "| model | checkpoint | own head | [CLS] probe | mean-pooling probe |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {lab} | `{path}` | {own:.4f} | {c:.4f} | {m:.4f} |" for lab, path, own, c, m in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
