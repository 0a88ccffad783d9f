"""``paddle_binbert.evaluate.evaluate_glue`` / ``evaluate_squad``: kept for the documented import path;
they live in :mod:`paddle_binbert.inference.evaluate`."""

from .inference.evaluate import evaluate_glue, evaluate_squad

__all__ = ["evaluate_glue", "evaluate_squad"]
