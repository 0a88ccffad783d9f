"""TinyBERT-style data augmentation for GLUE (Jiao et al., "TinyBERT", Findings of EMNLP 2020, Sec. 3.2).

For every sentence, split into words by BERT's basic tokenizer, each *candidate* word (not a stop
word, containing a letter) gets a list of replacement words:

* a word that is a single WordPiece ``w`` is masked and the masked-LM head of a BERT scores the
  vocabulary at that position; the candidates are the ``M`` highest-scoring tokens
  ``top_M softmax(h_mask W_dec + b)`` minus WordPiece continuations (``##...``) and special tokens;
* a word made of several pieces gets its ``M`` nearest neighbours by cosine similarity
  ``cos(u, v) = u.v / (|u| |v|)`` in a GloVe-format word-vector file (itself excluded).

``N`` new sentences are then drawn: every candidate position is, independently with probability
``p``, replaced by a uniformly chosen candidate.  The original sentence is kept first, duplicates
are dropped, the label (and every other column of the row) is copied.  Pair tasks augment each
text column separately, the other column kept as in the original row (specs/distillation.md).

The MLM input follows TinyBERT's release: segment A is the sentence with the word masked,
segment B the original sentence (``[CLS] masked [SEP] original [SEP]``), so the teacher proposes
in-context words; ``show_original=False`` gives the plain ``[CLS] masked [SEP]`` input.

The output is a TSV in the exact format of the task's ``train.tsv`` (same header and columns), so
``read_glue_examples(glue_dir, task, "train_aug")`` and ``task_distill.py --aug_train`` read it
when it is written to ``<glue_dir>/train_aug.tsv`` (the default).  Every example is augmented with
its own random generator seeded by ``(seed, row, column)``, so the result does not depend on
batching, and an interrupted run resumes from its partial file with an identical result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .glue import get_task_spec, read_glue_examples, read_tsv_rows

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_N",
    "STOP_WORDS",
    "AugmentStats",
    "DataAugmenter",
    "GloveFormatError",
    "WordVectors",
    "augment_glue_file",
    "is_candidate_word",
    "load_glove",
    "load_mlm",
    "main",
]

# Number of augmented sentences per example (TinyBERT release defaults, specs/distillation.md).
DEFAULT_N: Dict[str, int] = {
    "SST-2": 20,
    "CoLA": 30,
    "MRPC": 30,
    "RTE": 30,
    "STS-B": 30,
    "QNLI": 20,
    "MNLI": 10,
    "QQP": 10,
    "WNLI": 30,  # not in the release; same as the other small pair tasks
}

# English function words left untouched (pronouns, determiners, auxiliaries, prepositions,
# conjunctions, negation particles and the clitic pieces the basic tokenizer splits off).
STOP_WORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren as at be because been before
    being below between both but by can couldn d did didn do does doesn doing don down during each
    few for from further had hadn has hasn have haven having he her here hers herself him himself
    his how i if in into is isn it its itself just ll m ma me mightn more most mustn my myself
    needn no nor not now o of off on once only or other our ours ourselves out over own re s same
    shan she should shouldn so some such t than that the their theirs them themselves then there
    these they this those through to too under until up ve very was wasn we were weren what when
    where which while who whom why will with won wouldn y you your yours yourself yourselves
    """.split()
)


def is_candidate_word(word: str) -> bool:
    """Whether a basic-tokenizer word may be replaced: it contains a letter and is not a stop word.

    Punctuation, numbers and the words of :data:`STOP_WORDS` keep their place in every copy.
    """
    return any(ch.isalpha() for ch in word) and word.lower() not in STOP_WORDS


# --------------------------------------------------------------------------------------------
# Word vectors
# --------------------------------------------------------------------------------------------


class GloveFormatError(ValueError):
    """A word-vector file does not have the GloVe text layout ``word v_1 ... v_D`` per line.

    The message names the file, the 1-based line number and what was expected; the same facts are
    attributes ``path`` and ``line``.
    """

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}, line {line}: {problem}")


@dataclass
class WordVectors:
    """Unit-normalised word vectors for cosine nearest-neighbour search.

    Attributes:
        words: the words in file order.
        vectors: ``[len(words), D]`` float32 rows ``v / |v|`` (all-zero rows stay zero).
        index: word -> row.
    """

    words: List[str]
    vectors: np.ndarray
    index: Dict[str, int] = field(default_factory=dict)
    _cache: Dict[Tuple[str, int], List[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {}
            for i, w in enumerate(self.words):
                self.index.setdefault(w, i)  # first occurrence wins (files sorted by frequency)

    def lookup(self, word: str) -> Optional[int]:
        """Row of ``word`` (exact match first, then its lower-cased form), or None."""
        row = self.index.get(word)
        return self.index.get(word.lower()) if row is None else row

    def neighbours(self, word: str, k: int) -> List[str]:
        """The ``k`` words of highest cosine similarity ``u.v / (|u| |v|)`` to ``word``, best first.

        The word itself is excluded; ties are broken by file order.  Unknown words give ``[]``.
        """
        key = (word, k)
        if key in self._cache:
            return self._cache[key]
        row = self.lookup(word)
        if row is None or k <= 0:
            result: List[str] = []
        else:
            sims = self.vectors @ self.vectors[row]
            sims[row] = -np.inf
            k_eff = min(k, len(self.words) - 1)
            if k_eff <= 0:
                result = []
            else:
                part = np.argpartition(-sims, k_eff - 1)[:k_eff] if k_eff < len(sims) else np.arange(len(sims))
                # exact order among the selected ones; a tie at the cut-off is resolved by index
                cut = sims[part].min()
                pool = np.flatnonzero(sims >= cut)
                order = pool[np.lexsort((pool, -sims[pool]))][:k_eff]
                result = [self.words[i] for i in order]
        self._cache[key] = result
        return result


def load_glove(path: str, max_words: Optional[int] = 400000) -> WordVectors:
    """Read a GloVe-format text file: one ``word v_1 ... v_D`` line per word, single spaces.

    A word2vec-style first line ``<count> <D>`` is skipped.  D is taken from the first vector
    line; a line with more than D + 1 fields keeps the last D as the vector and joins the rest
    into the word (glove.840B has a few words containing spaces).  ``max_words`` keeps the first
    lines only (GloVe files are sorted by frequency); None reads everything.

    Raises:
        FileNotFoundError: no such file.
        GloveFormatError: a line with fewer than D + 1 fields, a value that is not a finite number,
            or an empty file; the message gives the file, the line and the expected layout.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GloVe file {path!r} not found (expected lines 'word v_1 ... v_D')")
    words: List[str] = []
    rows: List[np.ndarray] = []
    dim: Optional[int] = None
    with open(path, encoding="utf-8", errors="strict") as handle:
        lineno = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as err:
                raise GloveFormatError(path, lineno + 1, f"expected UTF-8 text ({err.reason})") from None
            if not line:
                break
            lineno += 1
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if not parts or parts == [""]:
                continue
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header "<count> <dim>"
            if dim is None:
                if len(parts) < 2:
                    raise GloveFormatError(path, lineno, f"expected 'word v_1 ... v_D', got {len(parts)} field(s)")
                dim = len(parts) - 1
            if len(parts) < dim + 1:
                raise GloveFormatError(
                    path, lineno, f"expected a word followed by {dim} numbers (as on the first line), "
                    f"got {len(parts)} space-separated field(s)"
                )
            word = " ".join(parts[: len(parts) - dim])
            try:
                vec = np.asarray([float(v) for v in parts[len(parts) - dim :]], dtype=np.float32)
            except ValueError:
                bad = next(v for v in parts[len(parts) - dim :] if not _is_float(v))
                raise GloveFormatError(path, lineno, f"expected {dim} numbers after the word {word!r}, "
                                       f"got {bad!r}") from None
            if not np.all(np.isfinite(vec)):
                raise GloveFormatError(path, lineno, f"expected finite numbers, the vector of {word!r} has inf/nan")
            words.append(word)
            rows.append(vec)
            if max_words is not None and len(words) >= max_words:
                break
    if not words:
        raise GloveFormatError(path, 1, "no word vectors found; expected lines 'word v_1 ... v_D'")
    mat = np.stack(rows)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    mat = np.where(norms > 0, mat / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    logger.info("loaded %d word vectors of dimension %d from %s", len(words), dim, path)
    return WordVectors(words, mat)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# Masked-LM teacher
# --------------------------------------------------------------------------------------------

def load_mlm(name_or_path: str) -> Tuple[Any, Any]:
    """Load a PaddleNLP BERT with its masked-LM head, in eval mode, and its tokenizer.

    ``name_or_path`` is a folder written by ``save_pretrained`` (of ``BertForMaskedLM`` or
    ``BertForPretraining``: both store the head as ``cls.predictions.*``) or a PaddleNLP model
    name.  A folder whose weights have no ``cls.predictions`` tensors (a plain ``BertModel``, such
    as a converted sentence-embedding model) is refused: its head would be random.

    Returns:
        ``(model, tokenizer)`` with ``model`` a ``BertForMaskedLM``.
    """
    from paddlenlp.transformers import BertForMaskedLM, BertTokenizer

    from ..checkpoints.files import first_file, weight_file_keys

    if os.path.isdir(name_or_path):
        weight_files = ("model_state.pdparams", "model.safetensors")
        weights = first_file(name_or_path, weight_files)
        if weights is None:
            raise FileNotFoundError(f"{name_or_path}: none of the weight files {weight_files}")
        keys = weight_file_keys(weights)
        if not any("predictions.transform" in k for k in keys):
            raise ValueError(
                f"{name_or_path} has no masked-LM head weights (no 'cls.predictions.*' tensors): it is a "
                "BertModel checkpoint, whose MLM head would be randomly initialised. Pass a BERT saved with "
                "its pre-training head (BertForMaskedLM / BertForPretraining, e.g. bert-base-uncased)."
            )
    elif os.path.exists(name_or_path):
        raise ValueError(f"--pretrained_bert_model {name_or_path!r} is a file; expected a model folder or name")
    model = BertForMaskedLM.from_pretrained(name_or_path)
    model.eval()
    tokenizer = BertTokenizer.from_pretrained(name_or_path)
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# Augmenter
# --------------------------------------------------------------------------------------------


@dataclass
class _Query:
    """One masked-LM query: sentence ``sent`` with word ``word`` masked."""

    sent: int
    word: int
    input_ids: List[int]
    mask_pos: int


class DataAugmenter:
    """TinyBERT data augmentation (Jiao et al., 2020): per-word candidates, then random replacement.

    Candidates of word ``w`` (see the module docstring): ``top_M`` masked-LM tokens if ``w`` is one
    WordPiece, else the ``M`` cosine nearest neighbours of ``w`` in ``word_vectors``.  A new
    sentence replaces each candidate position with probability ``p`` by a uniformly drawn candidate.

    Args:
        model: ``BertForMaskedLM`` / ``BertForPretraining`` (anything with ``.bert`` and
            ``.cls.predictions``), in eval mode.
        tokenizer: its ``BertTokenizer``.
        word_vectors: :class:`WordVectors` for multi-piece words (None: such words are kept).
        M: candidates per word (top-M MLM tokens before dropping ``##`` / special tokens).
        p: replacement probability per candidate position.
        batch_size: masked-LM queries per forward pass.
        show_original: MLM input ``[CLS] masked [SEP] original [SEP]`` (TinyBERT) instead of
            ``[CLS] masked [SEP]``.
        max_seq_length: MLM input length limit (default: the model's ``max_position_embeddings``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        word_vectors: Optional[WordVectors] = None,
        M: int = 15,
        p: float = 0.4,
        batch_size: int = 32,
        show_original: bool = True,
        max_seq_length: Optional[int] = None,
    ) -> None:
        if M < 1:
            raise ValueError(f"M must be >= 1, got {M}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.model, self.tokenizer, self.word_vectors = model, tokenizer, word_vectors
        self.M, self.p, self.batch_size, self.show_original = int(M), float(p), int(batch_size), show_original
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", 512)
        self.max_seq_length = int(max_seq_length or limit)
        specials = set(getattr(tokenizer, "all_special_tokens", []))
        self._id_to_token = list(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer.vocab)))))
        self._excluded = np.asarray(
            [t.startswith("##") or t in specials or (t.startswith("[") and t.endswith("]"))
             for t in self._id_to_token],
            dtype=bool,
        )

    # -- words and pieces -------------------------------------------------------------------

    def words(self, sentence: str) -> List[str]:
        """The words of ``sentence`` (BERT basic tokenizer: lower-casing, punctuation split)."""
        return self.tokenizer.basic_tokenizer.tokenize(sentence)

    def _pieces(self, word: str) -> List[str]:
        return self.tokenizer.wordpiece_tokenizer.tokenize(word)

    # -- candidates -------------------------------------------------------------------------

    def candidates_batch(self, sentences: Sequence[str]) -> List[Tuple[List[str], Dict[int, List[str]]]]:
        """For each sentence: its words and ``{word index: candidate words}`` (non-empty lists only)."""
        results: List[Tuple[List[str], Dict[int, List[str]]]] = []
        queries: List[_Query] = []
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        mask_id = self.tokenizer.mask_token_id
        for s, sentence in enumerate(sentences):
            words = self.words(sentence)
            pieces = [self._pieces(w) for w in words]
            cands: Dict[int, List[str]] = {}
            results.append((words, cands))
            flat = [self.tokenizer.convert_tokens_to_ids(p) for ps in pieces for p in ps]
            start = 0
            for i, (word, ps) in enumerate(zip(words, pieces)):
                pos, start = start, start + len(ps)
                if not is_candidate_word(word):
                    continue
                if len(ps) == 1:
                    query = self._mlm_input(flat, pos, cls_id, sep_id, mask_id)
                    if query is not None:
                        queries.append(_Query(s, i, query[0], query[1]))
                elif self.word_vectors is not None:
                    found = [w for w in self.word_vectors.neighbours(word, self.M) if _printable_word(w)]
                    if found:
                        cands[i] = found
        for start in range(0, len(queries), self.batch_size):
            chunk = queries[start : start + self.batch_size]
            for q, top in zip(chunk, self._mlm_top_tokens(chunk)):
                if top:
                    results[q.sent][1][q.word] = top
        for _, cands in results:  # candidate positions in word order
            ordered = dict(sorted(cands.items()))
            cands.clear()
            cands.update(ordered)
        return results

    def candidates(self, sentence: str) -> Tuple[List[str], Dict[int, List[str]]]:
        """Words and per-word candidates of one sentence (see :meth:`candidates_batch`)."""
        return self.candidates_batch([sentence])[0]

    def _mlm_input(
        self, flat: List[int], pos: int, cls_id: int, sep_id: int, mask_id: int
    ) -> Optional[Tuple[List[int], int]]:
        """``[CLS] a [SEP] (b [SEP])`` with piece ``pos`` of a masked; b truncated first.

        Returns ``(input ids, position of [MASK])`` or None when the mask does not fit.
        """
        masked = list(flat)
        masked[pos] = mask_id
        budget = self.max_seq_length - 2
        if pos >= budget:
            return None
        a = masked[:budget]
        ids = [cls_id] + a + [sep_id]
        if self.show_original:
            room = self.max_seq_length - len(ids) - 1
            if room > 0:
                ids += flat[:room] + [sep_id]
        return ids, pos + 1

    def _mlm_top_tokens(self, chunk: Sequence[_Query]) -> List[List[str]]:
        """Top-M tokens of the masked-LM logits at each query's mask, minus ``##`` / special tokens."""
        import paddle

        length = max(len(q.input_ids) for q in chunk)
        pad = self.tokenizer.pad_token_id
        ids = np.full((len(chunk), length), pad, dtype=np.int64)
        types = np.zeros((len(chunk), length), dtype=np.int64)
        mask = np.zeros((len(chunk), length), dtype=np.float32)
        positions = np.zeros(len(chunk), dtype=np.int64)
        sep_id = self.tokenizer.sep_token_id
        for r, q in enumerate(chunk):
            n = len(q.input_ids)
            ids[r, :n] = q.input_ids
            mask[r, :n] = 1.0
            first_sep = q.input_ids.index(sep_id)
            types[r, first_sep + 1 : n] = 1
            positions[r] = r * length + q.mask_pos
        with paddle.no_grad():
            seq = self.model.bert(
                paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types),
                attention_mask=paddle.to_tensor(mask), return_dict=False,
            )[0]
            logits = self.model.cls.predictions(seq, masked_positions=paddle.to_tensor(positions)).numpy()
        out = []
        for row in logits:
            top = np.argsort(-row, kind="stable")[: self.M]
            out.append([self._id_to_token[t] for t in top if not self._excluded[t]])
        return out

    # -- sampling ---------------------------------------------------------------------------

    def sample(
        self, words: List[str], cands: Dict[int, List[str]], n: int, rng: random.Random,
        exclude: Sequence[str] = (),
    ) -> List[str]:
        """Up to ``n`` new sentences: ``n`` draws, each position replaced w.p. ``p`` by a uniform
        candidate, words joined by spaces; draws equal to the original or to an earlier draw (or to
        a string of ``exclude``) are dropped (TinyBERT counts draws, not distinct results)."""
        seen = set(exclude) | {" ".join(words)}
        out: List[str] = []
        for _ in range(n):
            new = list(words)
            for i, options in cands.items():
                choice = options[rng.randrange(len(options))]
                if rng.random() < self.p:
                    new[i] = choice
            text = " ".join(new)
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out

    def augment(self, sentence: str, n: int, seed: Union[int, str] = 0) -> List[str]:
        """``[sentence] + up to n`` augmented copies (deterministic for a given ``seed``)."""
        words, cands = self.candidates(sentence)
        return [sentence] + self.sample(words, cands, n, random.Random(str(seed)), exclude=[sentence])


def _printable_word(word: str) -> bool:
    return bool(word) and not any(ch.isspace() or not ch.isprintable() for ch in word)


# --------------------------------------------------------------------------------------------
# GLUE files
# --------------------------------------------------------------------------------------------


@dataclass
class AugmentStats:
    """Summary of one :func:`augment_glue_file` run."""

    output: str
    examples: int
    rows_written: int
    resumed_from: int = 0

    @property
    def rows_per_example(self) -> float:
        """Average number of output rows per input example (original included)."""
        return self.rows_written / max(self.examples, 1)


def _text_columns(spec: Any, header: Optional[List[str]]) -> List[int]:
    if header is None:
        return list(spec.positions[0])
    names = [h.strip() for h in header]
    return [names.index(c) for c in spec.text_columns]


def _fingerprint(**facts: Any) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def augment_glue_file(
    augmenter: DataAugmenter,
    glue_dir: str,
    task_name: str,
    output: Optional[str] = None,
    N: Optional[int] = None,
    seed: int = 42,
    max_examples: Optional[int] = None,
    examples_per_step: int = 16,
    resume: bool = True,
    progress: bool = True,
    fingerprint_extra: Optional[Dict[str, Any]] = None,
) -> AugmentStats:
    """Augment ``<glue_dir>/train.tsv`` of a GLUE task into a TSV of the same format.

    Each input row gives its original row, then the new sentences of its first text column (other
    columns copied), then, for pair tasks, those of its second column (the first kept original);
    identical rows are written once.  The file is written to ``<output>.tmp`` and renamed at the
    end; ``<output>.tmp.progress`` records how far it got, and with ``resume=True`` a rerun with the
    same settings continues from there (the result is identical to an uninterrupted run).

    Args:
        augmenter: a :class:`DataAugmenter`.
        glue_dir: folder holding the task's ``train.tsv``.
        task_name: GLUE task (any spelling accepted by :func:`~paddle_binbert.data.glue.get_task_spec`).
        output: output path (default ``<glue_dir>/train_aug.tsv``, what ``--aug_train`` reads).
        N: augmented sentences per text column (default :data:`DEFAULT_N` of the task).
        seed: base seed; example ``r``, column ``c`` uses ``random.Random(f"{seed}-{r}-{c}")``.
        max_examples: augment only the first rows.
        examples_per_step: examples whose masked-LM queries are batched together.
        resume: continue a matching interrupted run instead of starting over.
        progress: show a tqdm progress bar.
        fingerprint_extra: more facts that must match for a resume (e.g. the model and GloVe paths).
    """
    spec = get_task_spec(task_name)
    n_aug = DEFAULT_N.get(spec.name, 30) if N is None else int(N)
    if n_aug < 0:
        raise ValueError(f"N must be >= 0, got {n_aug}")
    train_path = os.path.join(glue_dir, "train.tsv")
    examples = read_glue_examples(glue_dir, spec.name, "train")  # validates the file (line-numbered errors)
    rows = read_tsv_rows(train_path)
    header = rows.pop(0) if spec.has_header else None
    if len(rows) != len(examples):
        raise ValueError(f"{train_path}: {len(rows)} rows but {len(examples)} examples; cannot align the file")
    if max_examples is not None:
        rows = rows[: max(int(max_examples), 0)]
    columns = _text_columns(spec, header)
    output = output or os.path.join(glue_dir, "train_aug.tsv")
    if os.path.exists(output) and os.path.samefile(output, train_path):
        raise ValueError(f"augmentation output {output} is the input {train_path}: choose another file "
                         "(the default is train_aug.tsv beside it, what --aug_train reads)")
    tmp, state_path = output + ".tmp", output + ".tmp.progress"
    stat = os.stat(train_path)
    fingerprint = _fingerprint(
        task=spec.name, N=n_aug, M=augmenter.M, p=augmenter.p, seed=seed, rows=len(rows),
        show_original=augmenter.show_original, train=[os.path.abspath(train_path), stat.st_size, stat.st_mtime_ns],
        extra=fingerprint_extra or {},
    )

    done, offset, written = 0, 0, 0
    if resume and os.path.isfile(tmp) and os.path.isfile(state_path):
        try:
            with open(state_path, encoding="utf-8") as fh:
                state = json.load(fh)
            if state.get("fingerprint") == fingerprint and os.path.getsize(tmp) >= state["bytes"]:
                done, offset, written = int(state["examples"]), int(state["bytes"]), int(state["rows"])
                logger.info("resuming %s after %d of %d examples", tmp, done, len(rows))
            else:
                logger.warning("%s is from different settings; starting over", tmp)
        except (OSError, ValueError, KeyError) as err:
            logger.warning("cannot resume from %s (%s); starting over", state_path, err)
    resumed_from = done

    def save_state(handle: Any) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        with open(state_path + ".new", "w", encoding="utf-8") as fh:
            json.dump({"fingerprint": fingerprint, "examples": done, "bytes": handle.tell(), "rows": written}, fh)
        os.replace(state_path + ".new", state_path)

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    mode = "r+b" if done else "wb"
    with open(tmp, mode) as raw:
        if done:
            raw.seek(offset)
            raw.truncate()
        else:
            if header is not None:
                raw.write(("\t".join(header) + "\n").encode("utf-8"))
            save_state(raw)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(rows), initial=done, desc=f"augment {spec.name}", unit="ex")
        while done < len(rows):
            block = rows[done : done + examples_per_step]
            sentences = [row[c].strip() for row in block for c in columns]
            analysed = augmenter.candidates_batch(sentences)
            lines: List[str] = []
            for b, row in enumerate(block):
                r = done + b
                seen = {tuple(row[c].strip() for c in columns)}
                lines.append("\t".join(row))
                for j, c in enumerate(columns):
                    words, cands = analysed[b * len(columns) + j]
                    rng = random.Random(f"{seed}-{r}-{c}")
                    for text in augmenter.sample(words, cands, n_aug, rng, exclude=[row[c].strip()]):
                        new = list(row)
                        new[c] = text
                        key = tuple(new[k].strip() for k in columns)
                        if key not in seen:
                            seen.add(key)
                            lines.append("\t".join(new))
            raw.write(("\n".join(lines) + "\n").encode("utf-8"))
            written += len(lines)
            done += len(block)
            save_state(raw)
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()
    os.replace(tmp, output)
    os.remove(state_path)
    logger.info("wrote %d rows for %d examples to %s", written, len(rows), output)
    return AugmentStats(output=output, examples=len(rows), rows_written=written, resumed_from=resumed_from)



# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``examples/data_augmentation.py`` (TinyBERT's flag names)."""
    parser = argparse.ArgumentParser(
        description="TinyBERT data augmentation: write <glue_dir>/train_aug.tsv for task_distill.py --aug_train.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--pretrained_bert_model", required=True,
                        help="folder or PaddleNLP name of a BERT WITH its masked-LM head (BertForMaskedLM or "
                             "BertForPretraining weights, cls.predictions.*) and its vocab")
    parser.add_argument("--glove_embs", default=None,
                        help="GloVe-format text file ('word v_1 ... v_D' per line) for words of several "
                             "WordPieces; without it such words are never replaced")
    parser.add_argument("--glove_max_words", type=int, default=400000,
                        help="read only the first lines of the GloVe file (sorted by frequency); 0 = all")
    parser.add_argument("--glue_dir", required=True, help="task folder holding train.tsv (e.g. glue/SST-2)")
    parser.add_argument("--task_name", required=True, help="GLUE task: SST-2, CoLA, MRPC, STS-B, QQP, MNLI, QNLI, RTE")
    parser.add_argument("--output", default=None,
                        help="output TSV (default: <glue_dir>/train_aug.tsv, the file --aug_train reads)")
    parser.add_argument("--N", type=int, default=None,
                        help="augmented sentences per example and text column (default per task: "
                             + ", ".join(f"{k} {v}" for k, v in DEFAULT_N.items() if k != "WNLI") + ")")
    parser.add_argument("--M", type=int, default=15, help="candidates per word (masked-LM top-M / GloVe neighbours)")
    parser.add_argument("--p", type=float, default=0.4, help="probability of replacing each candidate word")
    parser.add_argument("--seed", type=int, default=42, help="random seed (output is deterministic given it)")
    parser.add_argument("--max_examples", type=int, default=None, help="augment only the first N training examples")
    parser.add_argument("--batch_size", type=int, default=32, help="masked-LM queries per forward pass")
    parser.add_argument("--no_original_context", action="store_true",
                        help="masked-LM input '[CLS] masked [SEP]' instead of TinyBERT's "
                             "'[CLS] masked [SEP] original [SEP]'")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="masked-LM input length limit (default: the model's max_position_embeddings)")
    parser.add_argument("--no_resume", action="store_true",
                        help="start over even if a partial <output>.tmp from the same settings exists")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry: parse arguments, load the teacher and word vectors, augment, print a summary."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = get_task_spec(args.task_name)
        if not os.path.isfile(os.path.join(args.glue_dir, "train.tsv")):
            raise FileNotFoundError(f"{os.path.join(args.glue_dir, 'train.tsv')} not found (expected the "
                                    f"{spec.name} training file)")
        if not 0.0 <= args.p <= 1.0:
            raise ValueError(f"--p must be in [0, 1], got {args.p}")
        if args.M < 1 or (args.N is not None and args.N < 0):
            raise ValueError("--M must be >= 1 and --N >= 0")
        if args.glove_embs is not None and not os.path.isfile(args.glove_embs):
            raise FileNotFoundError(f"--glove_embs {args.glove_embs} not found")
        if args.glove_embs is None:
            logger.warning("no --glove_embs: words made of several WordPieces will not be replaced")
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    try:
        vectors = None
        if args.glove_embs is not None:
            vectors = load_glove(args.glove_embs, max_words=args.glove_max_words or None)
        model, tokenizer = load_mlm(args.pretrained_bert_model)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    augmenter = DataAugmenter(
        model, tokenizer, vectors, M=args.M, p=args.p, batch_size=args.batch_size,
        show_original=not args.no_original_context, max_seq_length=args.max_seq_length,
    )
    stats = augment_glue_file(
        augmenter, args.glue_dir, spec.name, output=args.output, N=args.N, seed=args.seed,
        max_examples=args.max_examples, resume=not args.no_resume, progress=not args.no_progress,
        fingerprint_extra={"model": os.path.abspath(args.pretrained_bert_model) if os.path.exists(
            args.pretrained_bert_model) else args.pretrained_bert_model,
            "glove": args.glove_embs and os.path.abspath(args.glove_embs), "glove_max_words": args.glove_max_words,
            "max_seq_length": args.max_seq_length},
    )
    print(f"wrote {stats.rows_written} rows ({stats.rows_per_example:.1f} per example, original included) "
          f"for {stats.examples} examples to {stats.output}")
    return 0
