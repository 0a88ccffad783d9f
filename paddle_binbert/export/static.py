"""Static-graph export of FP and simulated-quantized BERT checkpoints for Paddle Inference.

``export_static(checkpoint, out_dir)`` writes::

    out_dir/
      inference.json        the program (Paddle 3 PIR format), written by ``paddle.jit.save``
      inference.pdiparams   its parameters
      export_info.json      task, input / output names, max_seq_length, pad id, quant preset
      config.json           the checkpoint's BertConfig
      vocab.txt, ...        the tokenizer files found next to the checkpoint

The graph takes ``input_ids``, ``token_type_ids`` and ``attention_mask`` (int64 ``[batch, seq_len]``,
mask 1 = token, 0 = padding) and returns ``logits`` ``[batch, num_labels]``, or ``start_logits`` and
``end_logits`` ``[batch, seq_len]`` for question answering. :class:`StaticPredictor` /
:func:`run_static` run it with ``paddle.inference`` on the CPU (oneDNN when Paddle has it).

Quantized students
------------------
``paddle.jit.to_static`` traces the students as they are. Their quantizers are
``paddle.autograd.PyLayer`` s (forward = quantize, backward = straight-through estimator), and
PaddleNLP's encoder forward is ``paddle.jit.not_to_static``, so the quantizers inside it are called
as plain Python while the program is built; :mod:`paddle_binbert.quant.functional` then runs each
PyLayer's own forward expression (static mode, no autograd), the same Paddle operations, so the
exported graph computes exactly what the eval-mode student computes. The learned activation scales
are initialised explicitly (calibration, a first training batch, or loaded weights) and the forward
decides that on Python-side state, so nothing data-dependent is left in the graph and nothing is
patched while exporting.

Activation quantizers whose scale was never initialised (a student that never ran a batch) are
refused (:func:`check_initialized_quantizers`): in dygraph they would take their scale from the
first batch they see, which a fixed graph cannot reproduce.

By default the weight quantizers are also folded (:func:`folded_weight_quantizers`): the exported
parameters of the quantized linears and of the word embedding are ``Q_w(W)`` (float32 values
``+-alpha``), computed once, instead of the latent weights re-quantized on every call.

Exactness and oneDNN: with Paddle's native CPU kernels the exported students reproduce the dygraph
students (tested to 1e-5 on tiny ``fp`` / ``bibert`` / ``bit`` classifiers and a QA model);
oneDNN rounds differently, which can flip sign bits of binarized students, so
:class:`StaticPredictor` uses oneDNN only for FP exports unless told otherwise (see there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

__all__ = [
    "EXPORT_INFO_NAME",
    "INPUT_NAMES",
    "MODEL_FILE",
    "PARAMS_FILE",
    "STATIC_PREFIX",
    "InferenceWrapper",
    "StaticPredictor",
    "export_static",
    "check_initialized_quantizers",
    "folded_weight_quantizers",
    "is_static_dir",
    "load_static",
    "main",
    "run_static",
    "save_inference_model",
    "task_of",
]

STATIC_PREFIX = "inference"
MODEL_FILE = STATIC_PREFIX + ".json"
PARAMS_FILE = STATIC_PREFIX + ".pdiparams"
EXPORT_INFO_NAME = "export_info.json"
FORMAT_NAME = "paddle_binbert.static"
FORMAT_VERSION = 1
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
OUTPUT_NAMES = {
    "sequence_classification": ("logits",),
    "question_answering": ("start_logits", "end_logits"),
    "base": ("sequence_output", "pooled_output"),
}
#: files copied from the checkpoint folder when present
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
    "id2label.json",
)

PathLike = Union[str, os.PathLike]
Outputs = Union[np.ndarray, Tuple[np.ndarray, ...]]


# ------------------------------------------------------------------------------ quantizers in the graph


def check_initialized_quantizers(model: nn.Layer) -> None:
    """Refuse a student whose data-initialised activation quantizers were never initialised.

    Reads each quantizer's saved flag into its Python-side state
    (:func:`~paddle_binbert.quant.calibration.sync_initialized`), so that the traced forward takes
    the initialised path and holds no initialisation step.

    Raises:
        ValueError: naming (up to five of) the uninitialised quantizers.
    """
    from ..quant.calibration import sync_initialized

    uninitialised = sync_initialized(model)
    if uninitialised:
        shown = ", ".join(uninitialised[:5]) + (" ..." if len(uninitialised) > 5 else "")
        raise ValueError(
            f"{len(uninitialised)} activation quantizer(s) were never initialised ({shown}): run the student on a "
            "batch (training does) or calibrate it before exporting it"
        )


@contextlib.contextmanager
def folded_weight_quantizers(model: nn.Layer) -> Iterator[int]:
    """Within the context, every ``QuantLinear`` / ``QuantEmbedding`` of ``model`` holds its quantized
    weight ``Q_w(W)`` as a plain parameter and no weight quantizer, so that the exported graph does
    not re-quantize constant weights on every call. Yields the number of folded layers.

    ``Q_w(W)`` is computed once here, in dygraph, by the layer's own :meth:`quantized_weight` (the
    embedding quantizers are row-wise, so quantizing the whole table gives the rows the forward pass
    would quantize after the look-up). A folded binary ``QuantLinear`` keeps computing its product
    integer part first (``folded_binary_weight``). The original parameters and quantizers are put back
    on exit.
    Split layers (``splitting.tws``, two latent halves) are left as they are.
    """
    from ..quant.layers import QuantEmbedding, QuantLinear

    saved = []
    try:
        for layer in model.sublayers(include_self=True):
            if not isinstance(layer, (QuantLinear, QuantEmbedding)) or layer.weight_quantizer is None:
                continue
            with paddle.no_grad():
                folded = layer.quantized_weight().detach()
            param = paddle.create_parameter(
                folded.shape, str(folded.dtype).split(".")[-1], default_initializer=nn.initializer.Assign(folded)
            )
            param.stop_gradient = True
            binary = isinstance(layer, QuantLinear) and layer.has_binary_weight()
            saved.append((layer, layer.weight, layer.weight_quantizer, binary))
            layer.weight = param
            layer.weight_quantizer = None
            if binary:  # keep the integer-product-first formulation (QuantLinear) with the folded weight
                layer.folded_binary_weight = True
        yield len(saved)
    finally:
        for layer, weight, quantizer, binary in reversed(saved):
            layer.weight = weight
            layer.weight_quantizer = quantizer
            if binary:
                layer.folded_binary_weight = False


# ------------------------------------------------------------------------------ wrapper and saving


def task_of(model: nn.Layer) -> str:
    """``sequence_classification``, ``question_answering`` or ``base`` for a PaddleNLP BERT model."""
    from paddlenlp.transformers import BertForQuestionAnswering, BertForSequenceClassification, BertModel

    if isinstance(model, BertForQuestionAnswering):
        return "question_answering"
    if isinstance(model, BertForSequenceClassification):
        return "sequence_classification"
    if isinstance(model, BertModel):
        return "base"
    raise TypeError(
        f"cannot export {type(model).__name__}: expected a PaddleNLP Bert(ForSequenceClassification|"
        "ForQuestionAnswering) model"
    )


class InferenceWrapper(nn.Layer):
    """The exported forward: ``(input_ids, token_type_ids, attention_mask) -> outputs``.

    Inputs are int64 ``[batch, seq_len]`` (mask 1 = token, 0 = padding, turned into PaddleNLP's
    additive ``(1 - mask) * -1e4`` by the model). Outputs: ``logits`` (classification),
    ``(start_logits, end_logits)`` (QA) or ``(sequence_output, pooled_output)`` (``BertModel``).
    """

    def __init__(self, model: nn.Layer, task: Optional[str] = None) -> None:
        super().__init__()
        self.model = model
        self.task = task or task_of(model)

    def forward(
        self, input_ids: paddle.Tensor, token_type_ids: paddle.Tensor, attention_mask: paddle.Tensor
    ) -> Union[paddle.Tensor, Tuple[paddle.Tensor, paddle.Tensor]]:
        out = self.model(input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask, return_dict=False)
        if self.task == "sequence_classification":
            return out[0] if isinstance(out, (tuple, list)) else out
        return out[0], out[1]


def save_inference_model(
    model: nn.Layer, path_prefix: PathLike, task: Optional[str] = None, fold_weights: bool = True
) -> Tuple[str, str]:
    """Trace ``model`` (eval mode) with ``paddle.jit.to_static`` and save ``PREFIX.json`` + ``PREFIX.pdiparams``.

    Works for FP and simulated-quantized students (see :func:`check_initialized_quantizers`); the model is
    left in eval mode and otherwise unchanged. With ``fold_weights`` (default) the quantized weights
    are stored already quantized (:func:`folded_weight_quantizers`): same outputs, less work per call.

    Returns:
        The paths of the program and the parameter file.
    """
    from paddle.static import InputSpec

    model.eval()
    wrapper = InferenceWrapper(model, task)
    wrapper.eval()
    spec = [InputSpec([None, None], "int64", name=name) for name in INPUT_NAMES]
    prefix = os.fspath(path_prefix)
    check_initialized_quantizers(model)
    with contextlib.ExitStack() as stack:
        if fold_weights:
            stack.enter_context(folded_weight_quantizers(model))
        static = paddle.jit.to_static(wrapper, input_spec=spec, full_graph=True)
        paddle.jit.save(static, prefix)
    program, params = prefix + ".json", prefix + ".pdiparams"
    if not os.path.isfile(program):  # a Paddle build without PIR writes the legacy .pdmodel
        legacy = prefix + ".pdmodel"
        if os.path.isfile(legacy):
            program = legacy
        else:
            raise RuntimeError(f"paddle.jit.save wrote neither {program} nor {legacy}")
    return program, params


def _checkpoint_task(path: str) -> str:
    """The task of a checkpoint from its config's ``architectures`` (default: classification)."""
    from ..checkpoints import resolve_config

    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        config = resolve_config(None, default_dir=folder)
    except ValueError:
        return "sequence_classification"
    archs = list(getattr(config, "architectures", None) or [])
    if "BertForQuestionAnswering" in archs:
        return "question_answering"
    if "BertModel" in archs and "BertForSequenceClassification" not in archs:
        return "base"
    return "sequence_classification"


def _is_export_dir(folder: str) -> bool:
    """Whether ``folder`` holds a previous :func:`export_static` output: the program and parameter
    files (or an ``export_info.json`` of this format) and no sub-folders (export writes none)."""
    from .outdir import has_subfolders

    folder = os.fspath(folder)
    try:
        marked = _read_info(folder).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        marked = False
    return (marked or is_static_dir(folder)) and not has_subfolders(folder)


def check_export_output(out_dir: PathLike, inputs: Sequence[Any] = (), overwrite: Optional[bool] = None) -> Path:
    """Check that :func:`export_static` may write ``out_dir`` (see its ``overwrite``); ``inputs`` are the
    checkpoint (folder or file) and config paths, which are never replaced. Returns the resolved folder.
    Raises :class:`~paddle_binbert.export.outdir.OutputFolderError`."""
    from .outdir import check_output_dir

    paths = [p for p in inputs if isinstance(p, (str, os.PathLike))]
    return check_output_dir(
        out_dir,
        paths,
        overwrite=overwrite,
        is_previous=_is_export_dir,
        what="static export",
        previous_desc=f"a previous static export ({MODEL_FILE} + {PARAMS_FILE} / {EXPORT_INFO_NAME}, no sub-folders)",
    )


def export_static(
    checkpoint_dir: PathLike,
    out_dir: PathLike,
    max_seq_length: Optional[int] = None,
    task: Optional[str] = None,
    config: Any = None,
    overwrite: Optional[bool] = None,
    fold_weights: bool = True,
) -> Dict[str, str]:
    """Export a checkpoint as a static graph for Paddle Inference (see the module docstring).

    Args:
        checkpoint_dir: anything :func:`paddle_binbert.checkpoints.load_checkpoint` reads: a PaddleNLP
            folder (FP or simulated quantized student), a Hugging Face BERT folder, or a bare weight
            file (then ``config`` or a config next to it gives the architecture). Packed 1-bit
            folders are refused (they run on :mod:`paddle_binbert.engine`).
        out_dir: destination folder; written to a temporary folder next to it, then swapped into
            place atomically (an error while exporting leaves a previous ``out_dir`` unchanged). Files
            get the modes a plain ``open()`` gives (``0644`` under the usual umask ``022``).
        max_seq_length: longest sequence the deployment will feed (recorded in ``export_info.json``
            and enforced by :class:`StaticPredictor`); default and maximum: the model's
            ``max_position_embeddings``. The graph itself has dynamic batch and length.
        task: ``sequence_classification``, ``question_answering`` or ``base``; default: from the
            config's ``architectures``.
        config: architecture of a bare weight file.
        overwrite: what an existing ``out_dir`` may be. None (default): a new or empty folder, or a
            previous static export (replaced); any other non-empty folder or file raises
            :class:`~paddle_binbert.export.outdir.OutputFolderError` (a ``FileExistsError``). True (CLI
            ``--overwrite``): replace whatever ``out_dir`` holds. False (CLI ``--no_overwrite``): refuse
            any existing non-empty ``out_dir``. Whatever it says, ``out_dir`` may not be, contain, or
            be a non-empty non-export folder inside the checkpoint (or ``config``) it reads.
        fold_weights: store quantized weights already quantized (see :func:`save_inference_model`).

    Returns:
        ``{"dir", "model", "params", "export_info", "config"}`` paths (plus ``"vocab"`` when copied).
    """
    from ..atomic import staged_output
    from ..checkpoints import checkpoint_format, load_checkpoint, normalize_task
    from ..models.quantize import QUANT_CONFIG_KEY

    source = os.fspath(checkpoint_dir)
    inputs = [source, config]
    out = os.fspath(check_export_output(out_dir, inputs, overwrite))
    task = normalize_task(task) if task else _checkpoint_task(source)
    model = load_checkpoint(source, task=task, config=config)
    model.eval()
    model_config = model.config
    max_positions = int(getattr(model_config, "max_position_embeddings", 512))
    if max_seq_length is None:
        max_seq_length = max_positions
    if not 1 <= int(max_seq_length) <= max_positions:
        raise ValueError(
            f"max_seq_length must be in [1, {max_positions}] (max_position_embeddings), got {max_seq_length}"
        )

    with staged_output(out, recheck=lambda: check_export_output(out, inputs, overwrite)) as staging:
        tmp = os.fspath(staging)
        program, params = save_inference_model(model, os.path.join(tmp, STATIC_PREFIX), task, fold_weights)
        src_dir = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
        src_config = os.path.join(src_dir, "config.json")
        if os.path.isdir(source) and checkpoint_format(source) == "paddlenlp" and os.path.isfile(src_config):
            shutil.copy2(src_config, os.path.join(tmp, "config.json"))  # as saved (quantized: binbert_quant_config)
        else:  # Hugging Face folder / bare weight file: the PaddleNLP config the model was built from
            model_config.to_json_file(os.path.join(tmp, "config.json"))
        for name in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(src_dir, name)):
                shutil.copy2(os.path.join(src_dir, name), os.path.join(tmp, name))
        quant = getattr(model_config, QUANT_CONFIG_KEY, None)
        info = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "task": task,
            "model_file": os.path.basename(program),
            "params_file": os.path.basename(params),
            "inputs": list(INPUT_NAMES),
            "outputs": list(OUTPUT_NAMES[task]),
            "max_seq_length": int(max_seq_length),
            "pad_token_id": int(getattr(model_config, "pad_token_id", 0) or 0),
            "num_labels": int(getattr(model_config, "num_labels", 2)) if task == "sequence_classification" else None,
            "quant_preset": quant.get("name") if isinstance(quant, dict) else None,
            "quantized": isinstance(quant, dict)
            and any(int(quant.get(k, 32)) < 32 for k in ("weight_bits", "embedding_bits", "activation_bits")),
            "source": os.path.abspath(source),
            "paddle_version": paddle.__version__,
        }
        with open(os.path.join(tmp, EXPORT_INFO_NAME), "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
            handle.write("\n")
    paths = {
        "dir": out,
        "model": os.path.join(out, os.path.basename(program)),
        "params": os.path.join(out, os.path.basename(params)),
        "export_info": os.path.join(out, EXPORT_INFO_NAME),
        "config": os.path.join(out, "config.json"),
    }
    if os.path.isfile(os.path.join(out, "vocab.txt")):
        paths["vocab"] = os.path.join(out, "vocab.txt")
    return paths


# ------------------------------------------------------------------------------ running


def is_static_dir(folder: PathLike) -> bool:
    """Whether ``folder`` holds an exported static model (``inference.json`` / ``.pdmodel`` + ``.pdiparams``)."""
    folder = os.fspath(folder)
    has_program = any(os.path.isfile(os.path.join(folder, STATIC_PREFIX + ext)) for ext in (".json", ".pdmodel"))
    return has_program and os.path.isfile(os.path.join(folder, PARAMS_FILE))


def _read_info(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, EXPORT_INFO_NAME)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 1 to stderr meanwhile.

    Paddle Inference's oneDNN passes print diagnostics (``ReduceMeanCheckIfOneDNNSupport``) to the
    process's stdout while the predictor is built and first run; they would corrupt the JSON a
    command prints there.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable fd 1 (embedded interpreters)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


def _as_int64(x: Any, name: str) -> np.ndarray:
    arr = x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [batch, seq_len], got shape {list(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


class StaticPredictor:
    """An exported folder loaded into a ``paddle.inference`` predictor (CPU).

    Args:
        out_dir: folder written by :func:`export_static`.
        num_threads: CPU math threads (default 1).
        use_onednn: oneDNN kernels. Default: on for FP exports when Paddle is compiled with oneDNN;
            off for quantized students, see below.
        ir_optim: Paddle Inference graph optimisations (on by default).

    Call ``predictor(input_ids, token_type_ids=None, attention_mask=None)`` with int arrays
    ``[batch, seq_len]`` (or Paddle tensors; a 1-D sequence is batch 1). ``token_type_ids`` defaults
    to zeros, ``attention_mask`` to ``input_ids != pad_token_id`` (as PaddleNLP's BERT). Returns numpy
    ``logits`` for classification, ``(start_logits, end_logits)`` for QA.

    oneDNN and quantized students: oneDNN's kernels round differently from Paddle's native CPU
    kernels (GEMM, GELU, LayerNorm round in another order), which is harmless for FP models but not
    for binarized ones, where a value that rounds to the other side of 0 flips a sign bit and the
    difference propagates through the following layers (no committed measurement of its size or of
    the speed gained); the native kernels reproduce the student (tested to 1e-5). So quantized
    exports default to the native kernels; pass ``use_onednn=True`` to opt in.
    """

    def __init__(
        self,
        out_dir: PathLike,
        num_threads: Optional[int] = None,
        use_onednn: Optional[bool] = None,
        ir_optim: bool = True,
    ) -> None:
        from paddle import inference

        folder = os.fspath(out_dir)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder} is not a folder")
        if not is_static_dir(folder):
            raise FileNotFoundError(f"{folder} holds no {MODEL_FILE} + {PARAMS_FILE}: export it with export_static")
        self.folder = folder
        self.info = _read_info(folder)
        program = os.path.join(folder, self.info.get("model_file", MODEL_FILE))
        if not os.path.isfile(program):
            program = os.path.join(folder, STATIC_PREFIX + ".pdmodel")
        config = inference.Config(program, os.path.join(folder, self.info.get("params_file", PARAMS_FILE)))
        config.disable_gpu()
        config.switch_ir_optim(bool(ir_optim))
        config.set_cpu_math_library_num_threads(int(num_threads or 1))
        if use_onednn is None:
            quantized = bool(self.info.get("quantized", self.info.get("quant_preset")))
            use_onednn = not quantized and bool(paddle.base.core.is_compiled_with_onednn())
        if use_onednn:
            config.enable_onednn()
        else:
            config.disable_onednn()
        config.disable_glog_info()
        self.use_onednn = bool(use_onednn)
        with _stdout_to_stderr():
            self._predictor = inference.create_predictor(config)
        self._ran = False
        self.input_names = list(self._predictor.get_input_names())
        missing = sorted(set(INPUT_NAMES) - set(self.input_names))
        if missing:
            raise ValueError(f"{folder}: the program lacks the inputs {missing} (has {self.input_names})")
        self.output_names = list(self._predictor.get_output_names())
        self.task = self.info.get("task") or (
            "question_answering" if len(self.output_names) == 2 else "sequence_classification"
        )
        self.max_seq_length = self.info.get("max_seq_length")
        self.pad_token_id = int(self.info.get("pad_token_id", 0))

    def __call__(self, input_ids: Any, token_type_ids: Any = None, attention_mask: Any = None) -> Outputs:
        ids = _as_int64(input_ids, "input_ids")
        types = np.zeros_like(ids) if token_type_ids is None else _as_int64(token_type_ids, "token_type_ids")
        if attention_mask is None:
            mask = (ids != self.pad_token_id).astype(np.int64)
        else:
            mask = _as_int64(attention_mask, "attention_mask")
        for name, arr in (("token_type_ids", types), ("attention_mask", mask)):
            if arr.shape != ids.shape:
                raise ValueError(f"{name} shape {list(arr.shape)} differs from input_ids {list(ids.shape)}")
        if self.max_seq_length and ids.shape[1] > self.max_seq_length:
            raise ValueError(
                f"sequence length {ids.shape[1]} exceeds the exported max_seq_length {self.max_seq_length}"
            )
        feeds = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        for name in self.input_names:
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(feeds[name].shape))
            handle.copy_from_cpu(feeds[name])
        if self._ran:
            self._predictor.run()
        else:
            with _stdout_to_stderr():
                self._predictor.run()
            self._ran = True
        outputs = tuple(self._predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs

    def __repr__(self) -> str:
        return f"StaticPredictor({self.folder!r}, task={self.task}, onednn={self.use_onednn})"


def load_static(out_dir: PathLike, **kwargs: Any) -> StaticPredictor:
    """A :class:`StaticPredictor` for an exported folder (``kwargs``: ``num_threads``, ``use_onednn``, ``ir_optim``)."""
    return StaticPredictor(out_dir, **kwargs)


def run_static(
    out_dir: PathLike,
    input_ids: Any,
    token_type_ids: Any = None,
    attention_mask: Any = None,
    **kwargs: Any,
) -> Outputs:
    """Run an exported folder once with ``paddle.inference`` (builds a predictor per call: keep a
    :func:`load_static` predictor for repeated calls). Returns numpy ``logits`` or
    ``(start_logits, end_logits)``."""
    return StaticPredictor(out_dir, **kwargs)(input_ids, token_type_ids, attention_mask)


# ------------------------------------------------------------------------------ command line


def _random_inputs(rng: np.random.Generator, vocab: int, batch: int, length: int, pad: int) -> Sequence[np.ndarray]:
    ids = rng.integers(1, vocab, (batch, length)).astype(np.int64)
    types = np.zeros_like(ids)
    mask = np.ones_like(ids)
    for row in range(batch):
        n = int(rng.integers(max(2, length // 2), length + 1))
        types[row, n // 2 : n] = 1
        ids[row, n:], mask[row, n:] = pad, 0
    return ids, types, mask


def _verify(checkpoint: str, out_dir: str, task: str, n: int, config: Any = None) -> float:
    """Largest absolute difference between the dygraph model and the exported graph on ``n`` random rows."""
    from ..checkpoints import load_checkpoint

    model = load_checkpoint(checkpoint, task=task, config=config)
    model.eval()
    predictor = StaticPredictor(out_dir)
    length = min(32, int(predictor.max_seq_length or 32))
    vocab = int(model.config.vocab_size)
    ids, types, mask = _random_inputs(np.random.default_rng(0), vocab, n, length, predictor.pad_token_id)
    wrapper = InferenceWrapper(model, task)
    with paddle.no_grad():
        ref = wrapper(*(paddle.to_tensor(a) for a in (ids, types, mask)))
    ref = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else [ref])]
    got = predictor(ids, types, mask)
    got = list(got) if isinstance(got, tuple) else [got]
    return float(max(np.abs(a - b).max() for a, b in zip(ref, got)))


def main(argv: Optional[List[str]] = None) -> int:
    """``paddle-binbert export CHECKPOINT OUT [--max_seq_length N] [--task T] [--verify N] [--overwrite]``.

    OUT may be new, empty or a previous export; ``--overwrite`` replaces any other folder; OUT may never
    be, contain, or be a non-empty folder inside the checkpoint."""
    parser = argparse.ArgumentParser(
        prog="paddle-binbert export",
        description="Export an FP or simulated-quantized BERT checkpoint as a static graph (inference.json + "
        "inference.pdiparams) for Paddle Inference.",
    )
    parser.add_argument("checkpoint", help="checkpoint folder (PaddleNLP FP / quantized student, Hugging Face) or file")
    parser.add_argument("out", help="destination folder")
    parser.add_argument("--max_seq_length", type=int, default=None, help="longest input (default: max positions)")
    parser.add_argument("--task", default=None, help="sequence_classification | question_answering | base")
    parser.add_argument("--config", default=None, help="architecture of a bare weight file")
    replace = parser.add_mutually_exclusive_group()
    replace.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT even when it is not a previous export (deletes its contents; never the checkpoint)",
    )
    replace.add_argument("--no_overwrite", action="store_true", help="fail if OUT exists and is not empty")
    parser.add_argument("--verify", type=int, default=0, metavar="N", help="compare with dygraph on N random rows")
    args = parser.parse_args(argv)
    try:
        paths = export_static(
            args.checkpoint,
            args.out,
            max_seq_length=args.max_seq_length,
            task=args.task,
            config=args.config,
            overwrite=True if args.overwrite else False if args.no_overwrite else None,
        )
        info = _read_info(paths["dir"])
        size = os.path.getsize(paths["params"]) / 2**20
        print(
            f"exported {info['task']} model ({info.get('quant_preset') or 'fp'}) to {paths['dir']}: "
            f"{os.path.basename(paths['model'])} + {os.path.basename(paths['params'])} ({size:.2f} MiB)"
        )
        if args.verify > 0:
            diff = _verify(args.checkpoint, paths["dir"], info["task"], args.verify, args.config)
            print(f"verify: max |dygraph - static| over {args.verify} random inputs = {diff:.3g}")
    except (FileNotFoundError, FileExistsError, ValueError, TypeError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
