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

scikit-learn fits the probes (a test dependency already); scipy gives Pearson.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np


def encode(model, tokenizer, pairs: List[Tuple[str, str]], max_len: int, batch: int) -> Dict[str, np.ndarray]:
    """The checkpoint's own outputs and the [CLS] / masked-mean pooled last hidden states."""
    import paddle

    cls, mean, head = [], [], []
    with paddle.no_grad():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            enc = tokenizer(
                [a for a, _ in chunk],
                [b for _, b in chunk] if chunk[0][1] is not None else None,
                max_length=max_len,
                truncation=True,
                padding=True,
                return_attention_mask=True,
            )
            ids = paddle.to_tensor(enc["input_ids"], dtype="int64")
            types = paddle.to_tensor(enc["token_type_ids"], dtype="int64")
            mask = paddle.to_tensor(enc["attention_mask"], dtype="float32")
            out = model(ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
            logits, hidden = out[0], out[1][-1]
            m = mask.unsqueeze(-1)
            cls.append(hidden[:, 0].numpy())
            mean.append(((hidden * m).sum(1) / m.sum(1)).numpy())
            head.append(logits.numpy())
    return {"cls": np.concatenate(cls), "mean": np.concatenate(mean), "head": np.concatenate(head)}


def probe(features: np.ndarray, labels: np.ndarray, regression: bool) -> float:
    """5-fold cross-validated Pearson (regression) or accuracy of a linear probe on ``features``."""
    from scipy.stats import pearsonr
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = KFold(5, shuffle=True, random_state=0)
    if regression:
        est = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        return float(pearsonr(cross_val_predict(est, features, labels, cv=folds), labels)[0])
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float((cross_val_predict(est, features, labels, cv=folds) == labels).mean())


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
    from paddle_binbert.data.glue import read_glue_examples

    examples = read_glue_examples(args.data_dir, args.task_name, "dev")
    if args.max_examples:
        examples = examples[: args.max_examples]
    regression = args.task_name.upper() == "STS-B"
    pairs = [(e.text_a, e.text_b) for e in examples]
    labels = np.array([float(e.label) if regression else int(e.label) for e in examples])
    metric = "Pearson" if regression else "accuracy"
    rows = []
    for spec in args.model:
        label, _, path = spec.partition("=")
        start = time.time()
        model = load_model(path)
        model.eval()
        tokenizer = BertTokenizer.from_pretrained(path)
        enc = encode(model, tokenizer, pairs, args.max_seq_length, args.batch_size)
        if regression:
            from scipy.stats import pearsonr

            own = float(pearsonr(enc["head"].reshape(-1), labels)[0])
        else:
            own = float((enc["head"].argmax(-1) == labels).mean())
        rows.append((label, path, own, probe(enc["cls"], labels, regression), probe(enc["mean"], labels, regression)))
        print(
            f"{label}: own head {own:.4f}, [CLS] probe {rows[-1][3]:.4f}, mean probe {rows[-1][4]:.4f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    lines = [
        f"# Linear probes of the last hidden state, {args.task_name} dev ({len(examples)} examples)",
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
