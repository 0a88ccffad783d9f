"""Command line: ``python -m paddle_binbert.data.squad DATA.json PREDICTIONS.json``.

Prints ``{"exact_match": ..., "f1": ...}`` (SQuAD v1.1 rules, percentages) as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from ...io_utils import decode_utf8, parse_json
from .evaluate import squad_evaluate
from .reader import SquadFormatError, load_squad_json


def _load_predictions(path: str) -> Dict[str, Any]:
    """The ``{question id: answer text}`` object of a predictions file; errors name the file."""
    with open(path, "rb") as handle:
        raw = handle.read()
    predictions = parse_json(decode_utf8(raw, path, SquadFormatError, "UTF-8 JSON"), path, SquadFormatError)
    if not isinstance(predictions, dict):
        raise SquadFormatError(f"{path}: expected a JSON object {{id: text}}")
    return predictions


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
        predictions = _load_predictions(args.prediction_file)
        result = squad_evaluate(dataset, predictions, source=args.data_file, predictions_source=args.prediction_file)
    except FileNotFoundError as err:
        print(f"error: {err.filename or err}: no such file", file=sys.stderr)
        return 1
    except (OSError, SquadFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
