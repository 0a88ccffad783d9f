"""SQuAD v1.1 dev and training sets for the Trainer: windowed features, their collator.

* :func:`load_squad_train` / :func:`load_squad_eval`: examples -> windowed features
  (:func:`~paddle_binbert.data.squad.prepare_train_features` /
  :func:`~paddle_binbert.data.squad.prepare_eval_features`), with ``max_examples`` cuts for quick runs;
  the dev set comes as a :class:`SquadEvalData` (the decoded file, its questions and their windows),
  what :class:`~paddle_binbert.tasks.squad.SquadEvaluation` scores;
* :func:`squad_collator`: pads a batch of :class:`~paddle_binbert.data.squad.SquadFeature` into
  int64 ``paddle.Tensor`` s (``start_positions`` / ``end_positions`` for training windows).

Unlike the rest of :mod:`paddle_binbert.data.squad` (plain Python / numpy, used by the Paddle-free
runtime), this module imports Paddle; the package does not import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import paddle

from ..sampler import dev_subset
from .features import SquadFeature, collate_features, prepare_eval_features, prepare_train_features
from .reader import SquadExample, load_squad_json, parse_squad, subset_squad

__all__ = [
    "SquadEvalData",
    "check_squad_file",
    "load_squad_eval",
    "load_squad_train",
    "squad_collator",
]


def check_squad_file(path: Optional[str], flag: str) -> None:
    """Raise ``FileNotFoundError`` naming ``flag`` when ``path`` is not an existing file."""
    if not path:
        raise FileNotFoundError(f"{flag} is required (a SQuAD v1.1 JSON file)")
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"{flag} {path} {what} (expected a SQuAD v1.1 JSON file)")


def _read(path: str, max_examples: Optional[int], spread: bool = False) -> Tuple[Dict[str, Any], List[SquadExample]]:
    dataset = load_squad_json(path)
    examples = parse_squad(dataset, source=str(path))
    if not examples:
        raise ValueError(f"{path} holds no question")
    if max_examples is not None:
        if max_examples < 1:
            raise ValueError(f"max_examples must be positive, got {max_examples}")
        examples = dev_subset(examples, max_examples, spread)
        dataset = subset_squad(dataset, {ex.id for ex in examples})
    return dataset, examples


def load_squad_train(
    path: str,
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    max_examples: Optional[int] = None,
) -> List[SquadFeature]:
    """Training windows of the first ``max_examples`` questions (all by default) of a SQuAD v1.1 file.

    Targets come from each question's first answer; windows that do not hold it point at ``[CLS]``
    (position 0), as in BERT's SQuAD recipe (Devlin et al., NAACL 2019).
    """
    _, examples = _read(path, max_examples)
    examples = [ex for ex in examples if ex.answers]
    if not examples:
        raise ValueError(f"{path}: no question with an answer to train on")
    return prepare_train_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)


@dataclass
class SquadEvalData:
    """A dev set ready for :class:`~paddle_binbert.tasks.squad.SquadEvaluation`.

    Attributes:
        dataset: the decoded SQuAD object (cut to the kept questions) scored by ``squad_evaluate``.
        examples: the kept questions, in file order.
        features: their evaluation windows, in example order.
        path: the file it was read from.
    """

    dataset: Dict[str, Any]
    examples: List[SquadExample]
    features: List[SquadFeature]
    path: str = ""

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> SquadFeature:
        return self.features[index]


def load_squad_eval(
    path: str,
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    max_examples: Optional[int] = None,
    spread: bool = False,
) -> SquadEvalData:
    """Read a SQuAD v1.1 dev file (the first ``max_examples`` questions, or with ``spread`` that many
    spread evenly over the file: :func:`~paddle_binbert.data.sampler.evenly_spaced`) and build its
    evaluation windows."""
    dataset, examples = _read(path, max_examples, spread)
    features = prepare_eval_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    return SquadEvalData(dataset, examples, features, str(path))


def squad_collator(pad_token_id: int = 0) -> Callable[[Sequence[SquadFeature]], Dict[str, paddle.Tensor]]:
    """``data_collator`` for the Trainer: pads features to the batch's longest (see ``collate_features``)
    and returns int64 tensors ``input_ids``, ``token_type_ids``, ``attention_mask`` (1 = token) and,
    for training windows, ``start_positions`` / ``end_positions``."""

    def collate(features: Sequence[SquadFeature]) -> Dict[str, paddle.Tensor]:
        arrays = collate_features(features, pad_token_id=pad_token_id)
        return {k: paddle.to_tensor(v, dtype="int64") for k, v in arrays.items()}

    return collate
