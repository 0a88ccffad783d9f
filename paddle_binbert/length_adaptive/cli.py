"""The LengthDrop command-line flags, in one place for every training script.

``examples/run_glue.py``, ``examples/run_squad.py`` and ``examples/task_distill.py`` (GLUE and SQuAD)
share the same four flags, defaults, help and validation messages::

    --length_adaptive --num_sandwich 2 --length_drop_ratio_bound 0.2 --layer_dropout_prob 0.2

* :func:`add_length_drop_args`: add the flag group to a parser (``note`` appends a script-specific
  remark to ``--length_adaptive``'s help, e.g. what the full model's loss is);
* :func:`check_length_drop_args`: ``parser.error`` naming the flag on a bad value;
* :func:`length_drop_config`: the :class:`~paddle_binbert.length_adaptive.lengthdrop.LengthDropConfig`
  of the run, or None without ``--length_adaptive``;
* :func:`length_drop_settings`: what ``results.json`` records.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any, Dict, Optional

from .lengthdrop import LengthDropConfig

__all__ = [
    "LENGTH_DROP_FLAGS",
    "add_length_drop_args",
    "check_length_drop_args",
    "length_drop_config",
    "length_drop_settings",
]

#: argparse destinations of the flags
LENGTH_DROP_FLAGS = ("length_adaptive", "num_sandwich", "length_drop_ratio_bound", "layer_dropout_prob")

_DEFAULTS = LengthDropConfig()


def add_length_drop_args(parser: argparse.ArgumentParser, note: str = "") -> argparse._ArgumentGroup:
    """Add the ``length-adaptive training`` group (the four LengthDrop flags) to ``parser``.

    Args:
        parser: the script's parser.
        note: appended to ``--length_adaptive``'s help (what the full model's loss is, which stages
            of a multi-stage run use LengthDrop, ...).
    """
    group = parser.add_argument_group("length-adaptive training (LengthDrop, Kim & Cho 2021; Dynamic-TinyBERT)")
    help_text = (
        "train with LengthDrop: sandwich rule (full, smallest and --num_sandwich random token-budget "
        "sub-models per step) with inplace distillation, for paddle-binbert search-length afterwards"
    )
    if note:
        help_text += "; " + note
    group.add_argument("--length_adaptive", action="store_true", help=help_text)
    group.add_argument(
        "--num_sandwich",
        type=int,
        default=_DEFAULTS.num_sandwich,
        help="random sub-models per step besides the full and the smallest",
    )
    group.add_argument(
        "--length_drop_ratio_bound",
        type=float,
        default=_DEFAULTS.length_drop_ratio_bound,
        help="p: each layer keeps between ceil((1-p) * previous length) and the previous length tokens",
    )
    group.add_argument(
        "--layer_dropout_prob",
        type=float,
        default=_DEFAULTS.layer_dropout_prob,
        help="LayerDrop: probability of skipping each layer in the random sub-models",
    )
    return group


def check_length_drop_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Validate the LengthDrop flags (also without ``--length_adaptive``); errors exit through
    ``parser.error`` with a message naming the flag."""
    if args.num_sandwich < 0:
        parser.error("--num_sandwich must be >= 0")
    if not 0.0 <= args.length_drop_ratio_bound < 1.0:
        parser.error("--length_drop_ratio_bound must be in [0, 1)")
    if not 0.0 <= args.layer_dropout_prob < 1.0:
        parser.error("--layer_dropout_prob must be in [0, 1)")


def length_drop_config(args: argparse.Namespace) -> Optional[LengthDropConfig]:
    """The :class:`LengthDropConfig` of parsed LengthDrop flags, or None when ``--length_adaptive`` is
    off (:meth:`~paddle_binbert.train.arguments.RunArguments.length_drop_config` of the same values)."""
    from ..train.arguments import RunArguments

    flags = {name: getattr(args, name) for name in LENGTH_DROP_FLAGS if hasattr(args, name)}
    return RunArguments.from_flags(flags).length_drop_config()


def length_drop_settings(config: Optional[LengthDropConfig]) -> Dict[str, Any]:
    """``results.json`` entries: ``length_adaptive`` (bool) and ``length_drop`` (the config's fields, or None)."""
    return {"length_adaptive": config is not None, "length_drop": asdict(config) if config is not None else None}
