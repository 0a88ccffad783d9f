"""Training: optimizers (and, as the package is restructured, the trainer and its arguments)."""

from .optimizers import OPTIMIZERS, BertAdam

__all__ = ["OPTIMIZERS", "BertAdam"]
