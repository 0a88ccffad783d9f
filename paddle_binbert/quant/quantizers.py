"""Quantizers as small `nn.Layer`s (larq-style objects) and a registry by name.

A weight quantizer maps a latent FP weight to its quantized value and has no parameters.
An activation quantizer may own learnable parameters (elastic alpha/beta, LSQ step, PACT
clip); those are initialised from data and saved with the model (the ``initialized`` buffer makes
a loaded model keep its trained values). Training calls :func:`~paddle_binbert.quant.calibration.calibrate`
first, which sets them from several random batches; a quantizer that was never calibrated falls
back to the first batch it sees. Whether a quantizer is initialised is Python-side state, so the
forward pass never reads a device value to decide it (see :class:`DataInitQuantizer`).

Look-up: ``get_quantizer("sign")``, ``get_quantizer("bibert", axis=0)``,
``get_quantizer("lsq_signed", bits=4)``; ``available_quantizers()`` lists the names and
``quantizer_arguments(name)`` the keyword arguments one accepts. An argument the quantizer does not
take is an error (as larq's ``quantizers.get``), not silently dropped.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, Optional, Tuple

import paddle
import paddle.nn as nn

from . import functional as QF

__all__ = [
    "Quantizer",
    "WeightQuantizer",
    "BiBertWeightQuantizer",
    "BwnWeightQuantizer",
    "BwnCenteredWeightQuantizer",
    "TwnWeightQuantizer",
    "UniformWeightQuantizer",
    "SignQuantizer",
    "BoolQuantizer",
    "DataInitQuantizer",
    "ElasticQuantizer",
    "LsqQuantizer",
    "UniformClipQuantizer",
    "WEIGHT_QUANTIZERS",
    "ACTIVATION_QUANTIZERS",
    "available_quantizers",
    "get_quantizer",
    "quantizer_arguments",
]


class Quantizer(nn.Layer):
    """Base class: ``forward(x) -> quantized x``; ``bits`` is the storage width of the output."""

    bits: int = 32

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class WeightQuantizer(Quantizer):
    """A parameter-free weight quantizer reducing its statistics over ``axis``.

    ``axis=None``: one scale for the whole matrix; ``axis=0``: per output channel of an
    ``[in, out]`` linear weight; ``axis=-1``: per row of an embedding (rows gathered first).
    """

    fn: Callable = None

    def __init__(self, axis: Optional[int] = None):
        super().__init__()
        self.axis = axis

    def forward(self, w: paddle.Tensor) -> paddle.Tensor:
        return type(self).fn(w, axis=self.axis)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, axis={self.axis}"


class BiBertWeightQuantizer(WeightQuantizer):
    """BiBERT: Wq = alpha_j * sgn(W - mu_j), STE 1[|W - mu_j| <= 1] (see ``functional.bibert_weight``)."""

    bits = 1
    fn = staticmethod(QF.bibert_weight)


class BwnWeightQuantizer(WeightQuantizer):
    """BWN: Wq = mean(|W|) * sgn(W), identity STE (see ``functional.bwn_weight``)."""

    bits = 1
    fn = staticmethod(QF.bwn_weight)


class BwnCenteredWeightQuantizer(WeightQuantizer):
    """BiT: Wq = mean(|W|) * sgn(W - mean(W)), identity STE (see ``functional.bwn_centered_weight``)."""

    bits = 1
    fn = staticmethod(QF.bwn_centered_weight)


class TwnWeightQuantizer(WeightQuantizer):
    """TWN ternary: alpha * sgn(W) * 1[|W| > 0.7 mean|W|], identity STE (see ``functional.twn_weight``)."""

    bits = 2
    fn = staticmethod(QF.twn_weight)


class UniformWeightQuantizer(WeightQuantizer):
    """Symmetric k-bit: round(W / s) * s, s = max|W| / (2^(k-1) - 1) (see ``functional.uniform_weight``)."""

    def __init__(self, bits: int = 8, axis: Optional[int] = None):
        super().__init__(axis)
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"uniform weight quantizer needs 2 <= bits <= 8, got {bits}")
        self.bits = int(bits)

    def forward(self, w: paddle.Tensor) -> paddle.Tensor:
        return QF.uniform_weight(w, self.bits, axis=self.axis)


class SignQuantizer(Quantizer):
    """Binary activation sgn(x) with STE 1[|x| <= 1] (BinaryNet; BiBERT)."""

    bits = 1

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return QF.sign_ste(x)


class BoolQuantizer(Quantizer):
    """BiBERT attention: 1[S > 0] with STE 1[|S| <= 1]."""

    bits = 1

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return QF.bool_ste(x)


class DataInitQuantizer(Quantizer):
    """Activation quantizer whose learnable parameters are initialised from activation statistics.

    The statistic is ``m = mean|x|`` (each subclass turns it into its scale in :meth:`_init_from_stat`).
    Two ways to set it, both once:

    * calibration (:func:`~paddle_binbert.quant.calibration.calibrate`): between
      :meth:`start_calibration` and :meth:`finish_calibration`, every forward adds its batch's
      ``mean|x|`` to a running average and sets the parameters from it, so that the layers after
      this one see a representative quantized input while the statistic is gathered;
    * otherwise the first batch the quantizer sees (the BiT release's rule). Under length-grouped
      batching that batch holds sentences of a single length and gives a poor scale (issue 23).

    State: the persistable ``initialized`` buffer (1.0 once set) is what checkpoints save and load;
    the forward pass decides on a Python-side copy of it, so an initialised quantizer's forward reads
    no device value. The copy is brought up to date by :meth:`refresh_initialized` (also reached through
    :attr:`is_initialized`), which the project's loaders call after ``set_state_dict``
    (:func:`~paddle_binbert.quant.calibration.sync_initialized`). Weights loaded by other code
    (e.g. PaddleNLP's Trainer resuming a run) are still found: while the copy says "not initialised",
    the first forward reads the buffer once before initialising from its batch.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("initialized", paddle.zeros([1], dtype="float32"), persistable=True)
        self._ready = False  # Python-side copy of `initialized`: forward reads this, not the buffer
        self._calibration: Optional[list] = None  # [sum of batch statistics, number of batches]

    def _init_from_stat(self, mean_abs: paddle.Tensor) -> None:
        raise NotImplementedError

    def refresh_initialized(self) -> bool:
        """Read the saved ``initialized`` flag (one device read) into the Python-side state and return it.

        Call after loading weights into the quantizer by ``set_state_dict`` (the buffer changes, the
        Python side cannot see it): a flag of 1 keeps the loaded scale, 0 makes the next forward
        initialise from its batch."""
        self._ready = self.initialized.item() != 0.0
        return self._ready

    @property
    def is_initialized(self) -> bool:
        """Whether the learnable parameters hold data-initialised (or trained / loaded) values; reads the
        saved flag (see :meth:`refresh_initialized`)."""
        return self.refresh_initialized()

    def mark_initialized(self) -> None:
        """Record that the parameters are set: the saved flag becomes 1 and the forward stops initialising."""
        self.initialized.set_value(paddle.ones([1], dtype="float32"))
        self._ready = True

    def start_calibration(self) -> None:
        """Gather ``mean|x|`` over the following forwards (re-initialises an initialised quantizer)."""
        self._calibration = [0.0, 0]

    def finish_calibration(self) -> int:
        """Stop gathering; mark the parameters initialised if any batch was seen. Returns the batch count."""
        seen = 0 if self._calibration is None else self._calibration[1]
        self._calibration = None
        if seen:
            self.mark_initialized()
        return seen

    def needs_data(self) -> bool:
        """Whether the next forward must look at its batch (calibrating, or not known to be initialised).
        A Python-side check: no device read."""
        return self._calibration is not None or not self._ready

    def maybe_initialize(self, x: paddle.Tensor) -> None:
        """Calibrating: add ``mean|x|`` of this batch to the running average and set the parameters from
        it. Otherwise initialise from ``x`` once (the first batch), then never again; weights loaded
        with the flag set (found by one read of the buffer) are kept. Forward calls this only while
        :meth:`needs_data`."""
        if self._calibration is not None:
            with paddle.no_grad():
                self._calibration[0] += float(x.detach().abs().mean())
                self._calibration[1] += 1
                self._init_from_stat(paddle.to_tensor(self._calibration[0] / self._calibration[1], dtype="float32"))
            return
        if self._ready or self.refresh_initialized():
            return
        with paddle.no_grad():
            self._init_from_stat(x.detach().abs().mean())
        self.mark_initialized()


def _scalar_param(layer: nn.Layer, value: float) -> paddle.Tensor:
    return layer.create_parameter([1], default_initializer=nn.initializer.Constant(value))


class ElasticQuantizer(DataInitQuantizer):
    """BiT elastic binary activation (Liu et al., 2022), one alpha and a per-channel beta.

    signed:   xq = alpha * sgn(x - beta);                alpha0 = 2 * mean|x|
    unsigned: xq = alpha * round(clip((x-beta)/alpha, 0, 1)) in {0, alpha};  alpha0 = 4 * mean|x|
    beta has ``num_channels`` entries (the trailing axis of x), initialised to 0.
    """

    bits = 1

    def __init__(self, signed: bool = True, num_channels: int = 1):
        super().__init__()
        self.signed = bool(signed)
        self.num_channels = int(num_channels)
        self.alpha = _scalar_param(self, 1.0)
        self.beta = self.create_parameter([self.num_channels], default_initializer=nn.initializer.Constant(0.0))

    def _init_from_stat(self, mean_abs: paddle.Tensor) -> None:
        factor = 2.0 if self.signed else 4.0
        self.alpha.set_value(paddle.clip(factor * mean_abs, min=1e-8).reshape([1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.needs_data():
            self.maybe_initialize(x)
        fn = QF.elastic_signed if self.signed else QF.elastic_unsigned
        return fn(x, self.alpha, self.beta)

    def extra_repr(self) -> str:
        return f"signed={self.signed}, num_channels={self.num_channels}"


class LsqQuantizer(DataInitQuantizer):
    """Learned step size quantizer (Esser et al., 2020); s0 = 2 * mean|x| / sqrt(Qp)."""

    def __init__(self, bits: int = 4, signed: bool = True):
        super().__init__()
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"lsq quantizer needs 2 <= bits <= 8, got {bits}")
        self.bits = int(bits)
        self.signed = bool(signed)
        self.step = _scalar_param(self, 1.0)

    def _init_from_stat(self, mean_abs: paddle.Tensor) -> None:
        _, qp = QF.lsq_range(self.bits, self.signed)
        self.step.set_value(paddle.clip(2.0 * mean_abs / qp**0.5, min=1e-8).reshape([1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.needs_data():
            self.maybe_initialize(x)
        return QF.lsq(x, self.step, self.bits, self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"


class UniformClipQuantizer(Quantizer):
    """Symmetric k-bit activation quantizer with a learnable PACT clip c (init 2.5)."""

    def __init__(self, bits: int = 8, init_clip: float = 2.5):
        super().__init__()
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"uniform_clip quantizer needs 2 <= bits <= 8, got {bits}")
        self.bits = int(bits)
        self.clip_val = _scalar_param(self, init_clip)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return QF.uniform_clip(x, self.clip_val, self.bits)


# Registry factories: keyword arguments only, each names exactly what its quantizer takes.


def _bibert(*, axis: Optional[int] = 0) -> Quantizer:
    return BiBertWeightQuantizer(axis)


def _bwn(*, axis: Optional[int] = None) -> Quantizer:
    return BwnWeightQuantizer(axis)


def _bwn_centered(*, axis: Optional[int] = None) -> Quantizer:
    return BwnCenteredWeightQuantizer(axis)


def _twn(*, axis: Optional[int] = None) -> Quantizer:
    return TwnWeightQuantizer(axis)


def _uniform(*, bits: int = 8, axis: Optional[int] = None) -> Quantizer:
    return UniformWeightQuantizer(bits, axis)


def _sign() -> Quantizer:
    return SignQuantizer()


def _bool() -> Quantizer:
    return BoolQuantizer()


def _elastic_signed(*, num_channels: int = 1) -> Quantizer:
    return ElasticQuantizer(signed=True, num_channels=num_channels)


def _elastic_unsigned(*, num_channels: int = 1) -> Quantizer:
    return ElasticQuantizer(signed=False, num_channels=num_channels)


def _lsq_signed(*, bits: int = 4) -> Quantizer:
    return LsqQuantizer(bits=bits, signed=True)


def _lsq_unsigned(*, bits: int = 4) -> Quantizer:
    return LsqQuantizer(bits=bits, signed=False)


def _uniform_clip(*, bits: int = 8) -> Quantizer:
    return UniformClipQuantizer(bits)


WEIGHT_QUANTIZERS: Dict[str, Callable[..., Quantizer]] = {
    "bibert": _bibert,
    "bwn": _bwn,
    "bwn_centered": _bwn_centered,
    "twn": _twn,
    "uniform": _uniform,
}

ACTIVATION_QUANTIZERS: Dict[str, Callable[..., Quantizer]] = {
    "sign": _sign,
    "bool": _bool,
    "elastic_signed": _elastic_signed,
    "elastic_unsigned": _elastic_unsigned,
    "lsq_signed": _lsq_signed,
    "lsq_unsigned": _lsq_unsigned,
    "uniform_clip": _uniform_clip,
}


def available_quantizers() -> list:
    """Names accepted by :func:`get_quantizer`, weight quantizers first."""
    return sorted(WEIGHT_QUANTIZERS) + sorted(ACTIVATION_QUANTIZERS)


def _factory(name: str) -> Callable[..., Quantizer]:
    factory = WEIGHT_QUANTIZERS.get(name) or ACTIVATION_QUANTIZERS.get(name)
    if factory is None:
        raise ValueError(f"unknown quantizer {name!r}; valid names: {', '.join(available_quantizers())}")
    return factory


def quantizer_arguments(name: str) -> Tuple[str, ...]:
    """The keyword arguments the quantizer ``name`` accepts, e.g. ``("bits", "axis")`` for ``uniform``,
    ``()`` for ``sign``."""
    return tuple(inspect.signature(_factory(name)).parameters)


def get_quantizer(name: str, **kwargs) -> Quantizer:
    """Build a quantizer by registry name with the keyword arguments it accepts.

    An argument the quantizer does not take raises ``TypeError`` naming the quantizer, the argument(s)
    and the accepted ones (:func:`quantizer_arguments`); an unknown name raises ``ValueError`` listing
    the names.

    >>> get_quantizer("bibert", axis=0); get_quantizer("lsq_unsigned", bits=2)
    """
    factory = _factory(name)
    accepted = quantizer_arguments(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no arguments"
        raise TypeError(f"quantizer {name!r} does not take {', '.join(unknown)}; it accepts: {takes}")
    return factory(**kwargs)
