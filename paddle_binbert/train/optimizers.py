"""BertAdam, the optimizer of the BERT, TinyBERT, BiBERT and BiT releases.

Paddle has AdamW but not BertAdam, whose update differs in three ways that matter for short
distillation budgets (issue 23): no bias correction, epsilon inside the root's sum of 1e-6, and
each parameter's gradient clipped to norm ``max_grad_norm`` on its own (AdamW here clips the
global norm). Without bias correction the first steps are larger than Adam's: at step t Adam
scales the update by ``sqrt(1 - b2^t) / (1 - b1^t)``, BertAdam by 1.
"""

from __future__ import annotations

from typing import Callable, Optional

import paddle

__all__ = ["BertAdam", "OPTIMIZERS"]

#: ``--optimizer`` choices.
OPTIMIZERS = ("adamw", "bertadam")


class BertAdam(paddle.optimizer.Optimizer):
    """Adam without bias correction and with decoupled weight decay (Devlin et al., 2019).

    For each parameter p with gradient g (dygraph only)::

        g  <- g * min(1, max_grad_norm / ||g||_2)        (per tensor; skipped if max_grad_norm <= 0)
        m  <- b1 m + (1 - b1) g
        v  <- b2 v + (1 - b2) g^2
        p  <- p - lr * (m / (sqrt(v) + eps) + wd * p)     (wd only where apply_decay_param_fun(p.name))

    ``lr`` follows the scheduler and each parameter group's ``learning_rate`` multiplier, as in
    Paddle's optimizers. Moments are saved in ``state_dict()`` and restored on resume.
    """

    def __init__(
        self,
        learning_rate,
        parameters,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
        apply_decay_param_fun: Optional[Callable[[str], bool]] = None,
        name: Optional[str] = None,
    ) -> None:
        for label, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {value}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        super().__init__(
            learning_rate=learning_rate, parameters=parameters, weight_decay=None, grad_clip=None, name=name
        )
        self.type = "bertadam"
        self._beta1, self._beta2, self._epsilon = float(beta1), float(beta2), float(epsilon)
        self._coeff = float(weight_decay)
        self._max_grad_norm = float(max_grad_norm)
        self._apply_decay_param_fun = apply_decay_param_fun

    def _create_accumulators(self, block, parameters) -> None:
        if isinstance(parameters, dict):
            parameters = parameters["params"]
        for p in parameters:
            self._add_accumulator("moment1", p)
            self._add_accumulator("moment2", p)

    @paddle.no_grad()
    def _append_optimize_op(self, block, param_and_grad) -> None:
        if isinstance(param_and_grad, dict):
            param_and_grad = param_and_grad["params"]
        param, grad = param_and_grad
        grad = grad.astype(param.dtype)
        if self._max_grad_norm > 0:
            norm = paddle.sqrt((grad * grad).sum())
            grad = grad * paddle.clip(self._max_grad_norm / (norm + 1e-6), max=1.0)
        m = self._get_accumulator("moment1", param)
        v = self._get_accumulator("moment2", param)
        m.set_value(self._beta1 * m + (1.0 - self._beta1) * grad)
        v.set_value(self._beta2 * v + (1.0 - self._beta2) * grad * grad)
        update = m / (paddle.sqrt(v) + self._epsilon)
        if self._coeff and (self._apply_decay_param_fun is None or self._apply_decay_param_fun(param.name)):
            update = update + self._coeff * param
        lr = self._create_param_lr((param, grad))
        param.set_value(param - lr.astype(param.dtype) * update)
