"""Command line: ``python -m paddle_binbert.data.squad DATA.json PREDICTIONS.json``.

Prints ``{"exact_match": ..., "f1": ...}`` (SQuAD v1.1 rules, percentages) as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from .evaluate import squad_evaluate
from .reader import SquadFormatError, load_squad_json


def main(argv: Optional[List[str]] = None) -> int:
    """Evaluate a predictions file against a SQuAD v1.1 data file; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m paddle_binbert.data.squad",
        description="SQuAD v1.1 exact match / F1 of a predictions.json ({id: text}) against a data file.",
    )
    parser.add_argument("data_file", help="SQuAD v1.1 JSON file (e.g. dev-v1.1.json)")
    parser.add_argument("prediction_file", help="JSON object {question id: answer text}")
    args = parser.parse_args(argv)
    try:
        dataset = load_squad_json(args.data_file)
        with open(args.prediction_file, encoding="utf-8") as handle:
            try:
                predictions = json.load(handle)
            except json.JSONDecodeError as err:
                raise SquadFormatError(
                    f"{args.prediction_file}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
                ) from err
        if not isinstance(predictions, dict):
            raise SquadFormatError(f"{args.prediction_file}: expected a JSON object {{id: text}}")
        result = squad_evaluate(dataset, predictions)
    except (OSError, SquadFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
