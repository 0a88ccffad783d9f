"""The engine's simulated backend: a packed 1-bit model run with Paddle float32 operations.

When the C++ operators cannot be built (no compiler, unsupported platform), or when asked for
(``engine.load(path, backend="simulated")`` or ``PADDLE_BINBERT_ENGINE=simulated``),
:func:`paddle_binbert.engine.load` returns a :class:`SimulatedBertEngine`. It reads the same
packed file as the native engine and computes the same function:

- each binary linear keeps its sign bits unpacked to a ``+-1`` float32 matrix ``[in, out]``; its
  input is turned into ``+-1`` (sign / signed elastic: ``sgn(x - beta)``) or ``{0, 1}`` (BiT's
  unsigned FFN2 input: ``1[clip((act(x) - beta) / alpha, 0, 1) + 1/2 >= 1]``), and
  ``y_j = alpha_j * dot_j + b_j``. The float32 matrix product of ``+-1`` / ``{0, 1}`` values is
  exact integer arithmetic, so ``y`` is the native engine's to the bit;
- the word embedding row ``v`` is ``alpha_v * (+-1)``, unpacked from the gathered rows only;
- attention: BiBERT's ``1[sgn(Q) sgn(K)^T / sqrt(d) + M > 0] sgn(V)``; BiT's softmax with
  ``{0, 1}`` probability levels times ``alpha_p * alpha_v``; the BWN baseline's ``sgn(softmax)``
  (``+1`` at every real key, so the context is the sum of the real keys' value signs). In every
  variant a masked key (``M <= -1``) gets attention 0, as in the model (specs/attention.md, "Padding");
- FP islands (embedding sum + LayerNorm, residual + LayerNorm, pooler tanh, head) with Paddle's
  own operators, as the simulated (fake-quant) student runs them.

Its outputs equal the native engine's and the simulated student's to float rounding (relative
error well below 1e-4); it is slower than the native kernels (plain float GEMMs) and holds the
weights as float32, like the student.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..format.packed import PackedModel, unpack_bits
from ..models.attention import MASKED_KEY_THRESHOLD
from .base import CheckedInputs, Outputs, PackedRunnerBase

__all__ = ["SimulatedBertEngine"]


class _Linear:
    """One binary linear of the packed file, ready for float arithmetic."""

    def __init__(self, paddle, tensors: Dict[str, np.ndarray], name: str, n_in: int, elastic: bool):
        bits = unpack_bits(tensors[f"{name}.bits"], n_in)  # [out, in]
        self.weight = paddle.to_tensor(np.where(bits.T, np.float32(1), np.float32(-1)))  # [in, out]
        self.alpha = paddle.to_tensor(_f32(tensors[f"{name}.alpha"]))
        self.bias = paddle.to_tensor(_f32(tensors[f"{name}.bias"]))
        self.input_beta = paddle.to_tensor(_f32(tensors[f"{name}.input_beta"])) if elastic else None
        self.input_alpha = float(_f32(tensors[f"{name}.input_alpha"])[0]) if elastic else 1.0

    def __call__(self, paddle, levels):
        """``alpha * (levels @ W) + bias`` for input levels in ``{-1, +1}`` or ``{0, 1}``."""
        return paddle.matmul(levels, self.weight) * self.alpha + self.bias


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).astype(np.float32))


class SimulatedBertEngine(PackedRunnerBase):
    """A packed binary BERT run in Paddle float32 arithmetic (no C++ operators needed).

    Same call signature and outputs as :class:`~paddle_binbert.engine.PackedBertEngine`:
    ``model(input_ids, token_type_ids=None, attention_mask=None)`` returns logits
    ``[batch, num_labels]`` or ``(start_logits, end_logits)`` as numpy float32; :meth:`forward`
    also returns the last hidden state. Build it with ``paddle_binbert.engine.load(path,
    backend="simulated")`` (or let :func:`~paddle_binbert.engine.load` fall back to it).
    """

    backend = "simulated"

    def __init__(self, packed: PackedModel, num_threads: Optional[int] = None, profile: bool = False):
        super().__init__(packed)
        import paddle
        import paddle.nn.functional as F

        self._paddle, self._F = paddle, F
        self.isa = None
        self.num_threads = num_threads
        self.profiling = bool(profile)
        self._times: list = []
        m, t = self.meta, packed.tensors
        h, inter = int(m["hidden_size"]), int(m["intermediate_size"])
        self._heads = int(m["num_heads"])
        self._elastic = m["activation"] == "elastic"
        self._unsigned_ffn2 = m["ffn2_input"] == "unsigned"
        self._act = m["hidden_act"]
        self._eps = (float(m["layer_norm_eps"]["embeddings"]), float(m["layer_norm_eps"]["encoder"]))
        emb = "bert.embeddings"
        self._word_bits = np.ascontiguousarray(t[f"{emb}.word_embeddings.bits"])
        self._word_alpha = _f32(t[f"{emb}.word_embeddings.alpha"])
        self._hidden = h

        def tensor(name: str):
            return paddle.to_tensor(_f32(t[name]))

        self._pos = tensor(f"{emb}.position_embeddings.weight")
        self._type = tensor(f"{emb}.token_type_embeddings.weight")
        self._emb_norm = (tensor(f"{emb}.layer_norm.weight"), tensor(f"{emb}.layer_norm.bias"))
        scale = np.float32(float(h // self._heads) ** -0.5)
        self._layers = []
        for i in range(int(m["num_layers"])):
            pre = f"bert.encoder.layers.{i}"
            layer: Dict[str, Any] = {
                n: _Linear(paddle, t, f"{pre}.self_attn.{n}_proj", h, self._elastic) for n in ("q", "k", "v")
            }
            layer["out"] = _Linear(paddle, t, f"{pre}.self_attn.out_proj", h, self._elastic)
            layer["linear1"] = _Linear(paddle, t, f"{pre}.linear1", h, self._elastic)
            layer["linear2"] = _Linear(paddle, t, f"{pre}.linear2", inter, self._elastic)
            for norm in ("norm1", "norm2"):
                layer[norm] = (tensor(f"{pre}.{norm}.weight"), tensor(f"{pre}.{norm}.bias"))
            if m["attention"] == "softmax_elastic":
                q = {n: _f32(t[f"{pre}.self_attn.{n}_quantizer.alpha"])[0] for n in ("query", "key", "value", "prob")}
                # the native engine's folded scales: fl(fl(aq / sqrt d) * ak) and fl(ap * av)
                layer["cqk"] = float(np.float32(np.float32(q["query"] * scale) * q["key"]))
                layer["cpv"] = float(np.float32(q["prob"] * q["value"]))
                layer["prob_alpha"] = float(q["prob"])
                layer["prob_beta"] = float(_f32(t[f"{pre}.self_attn.prob_quantizer.beta"])[0])
                for n in ("query", "key", "value"):
                    layer[f"{n}_beta"] = tensor(f"{pre}.self_attn.{n}_quantizer.beta")
            else:
                layer["cqk"] = float(scale)
            self._layers.append(layer)
        self._pooler = None
        if self.task == "classification":
            self._pooler = _Linear(paddle, t, "bert.pooler.dense", h, self._elastic)
        self._head = (tensor("classifier.weight"), tensor("classifier.bias"))

    # ------------------------------------------------------------------ public
    @property
    def isa_name(self) -> str:
        """``"simulated"``: no native kernels run (Paddle float32 operators instead)."""
        return "simulated"

    def set_threads(self, num_threads: Optional[int]) -> None:
        """Recorded only: the simulated backend uses Paddle's own CPU threading."""
        self.num_threads = num_threads

    def set_profiling(self, enabled: bool = True) -> None:
        """Record the wall time of each call (read it with :meth:`read_profile`)."""
        self.profiling = bool(enabled)

    def read_profile(self) -> Dict[str, float]:
        """``{"total": mean seconds per call, "calls": n}`` since the last read (profiling must be
        on), then reset. The simulated backend has no per-stage timers."""
        calls = len(self._times)
        out = {"total": float(sum(self._times)) / max(calls, 1), "calls": calls}
        self._times = []
        return out

    # ------------------------------------------------------------------ internals
    def _compute(self, inputs: CheckedInputs, want_hidden: bool) -> Outputs:
        start = time.perf_counter()
        with self._paddle.no_grad():
            logits, hidden = self._run(inputs.ids, inputs.types, inputs.mask, inputs.length_config)
        if self.profiling:
            self._times.append(time.perf_counter() - start)
        return logits, hidden

    def _sign(self, x, beta=None):
        """``sgn(x - beta)`` as +-1 float32 (ties to +1)."""
        paddle = self._paddle
        s = x if beta is None else x - beta
        return paddle.where(s >= 0, paddle.ones_like(s), -paddle.ones_like(s))

    def _split(self, x):
        b, n, h = x.shape
        return x.reshape([b, n, self._heads, h // self._heads]).transpose([0, 2, 1, 3])

    def _merge(self, x):
        b, heads, n, d = x.shape
        return x.transpose([0, 2, 1, 3]).reshape([b, n, heads * d])

    def _embed(self, ids: np.ndarray, types: np.ndarray):
        paddle, F = self._paddle, self._F
        b, n = ids.shape
        flat = ids.reshape(-1)
        signs = np.where(unpack_bits(self._word_bits[flat], self._hidden), np.float32(1), np.float32(-1))
        word = paddle.to_tensor(signs * self._word_alpha[flat][:, None]).reshape([b, n, self._hidden])
        token_type = paddle.gather(self._type, paddle.to_tensor(types.reshape(-1))).reshape([b, n, self._hidden])
        x = word + self._pos[:n].unsqueeze(0) + token_type  # PaddleNLP's order of additions
        return F.layer_norm(x, [self._hidden], self._emb_norm[0], self._emb_norm[1], self._eps[0])

    def _attention(self, layer: Dict[str, Any], x, mask, want_probs: bool = False):
        """The context ``[B, n, H]``; with ``want_probs`` also ``[B, heads, n, n]`` attention
        probabilities for the token significance: BiBERT's bool attention itself, BiT's softmax
        before its probability quantizer."""
        paddle, F = self._paddle, self._F
        attention = self.meta["attention"]
        real = paddle.to_tensor((mask > np.float32(MASKED_KEY_THRESHOLD)).astype(np.float32))  # [B, n] real keys
        if attention == "ones":  # sgn(softmax) = +1 at every real key: they contribute their value signs
            v = layer["v"](paddle, self._sign(x, layer["v"].input_beta))
            sv = self._split(self._sign(v)) * real.reshape([mask.shape[0], 1, mask.shape[1], 1])
            ctx = self._merge(sv.sum(axis=2, keepdim=True).expand(sv.shape))
            return (ctx, None) if want_probs else ctx
        real = real.reshape([mask.shape[0], 1, 1, mask.shape[1]])
        q, k, v = (layer[n](paddle, self._sign(x, layer[n].input_beta)) for n in ("q", "k", "v"))
        keymask = paddle.to_tensor(mask).reshape([mask.shape[0], 1, 1, mask.shape[1]])
        if attention == "bool":
            sq, sk, sv = (self._split(self._sign(a)) for a in (q, k, v))
            scores = paddle.matmul(sq, sk, transpose_y=True) * layer["cqk"] + keymask
            att = (scores > 0).astype("float32") * real
            ctx = self._merge(paddle.matmul(att, sv))
            return (ctx, att) if want_probs else ctx
        sq = self._split(self._sign(q, layer["query_beta"]))
        sk = self._split(self._sign(k, layer["key_beta"]))
        sv = self._split(self._sign(v, layer["value_beta"]))
        probs = F.softmax(paddle.matmul(sq, sk, transpose_y=True) * layer["cqk"] + keymask)
        u = paddle.clip((probs - layer["prob_beta"]) / layer["prob_alpha"], 0.0, 1.0)
        levels = (u + 0.5 >= 1.0).astype("float32") * real
        ctx = self._merge(paddle.matmul(levels, sv) * layer["cpv"])
        return (ctx, probs) if want_probs else ctx

    def _ffn2_input(self, y, lin: _Linear):
        """linear2's input levels from linear1's output (activation folded into the quantizer)."""
        F = self._F
        v = F.relu(y) if self._act == "relu" else F.gelu(y)
        if not self._unsigned_ffn2:
            return self._sign(v, lin.input_beta)
        s = v if lin.input_beta is None else v - lin.input_beta
        u = self._paddle.clip(s / lin.input_alpha, 0.0, 1.0)
        return (u + 0.5 >= 1.0).astype("float32")

    def _run(
        self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray, config: Optional[Tuple[int, ...]] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        from ..length_adaptive.drop_restore import attention_significance, gather_tokens, restore_tokens, select_tokens

        paddle, F = self._paddle, self._F
        h, enc_eps = self._hidden, self._eps[1]
        x = self._embed(ids, types)
        batch, seq_len = ids.shape
        restore = config is not None and self.task == "question_answering"
        positions = paddle.arange(seq_len, dtype="int64").unsqueeze(0).expand([batch, seq_len])
        buffer = x
        for i, layer in enumerate(self._layers):
            keep = None if config is None else min(config[i], x.shape[1])
            if keep is not None and keep < x.shape[1]:
                ctx, probs = self._attention(layer, x, mask, want_probs=True)
                mask4 = paddle.to_tensor(mask).reshape([batch, 1, 1, mask.shape[1]])
                index = select_tokens(attention_significance(probs, mask4), keep)
                if restore:
                    buffer = restore_tokens(buffer, positions, x)
                positions = paddle.take_along_axis(positions, index, axis=1)
                # per-token from here on: drop before the out-projection, as the native engine does
                x, ctx = gather_tokens(x, index), gather_tokens(ctx, index)
                mask = np.take_along_axis(mask, index.numpy(), axis=1)
            else:
                ctx = self._attention(layer, x, mask)
            ao = layer["out"](paddle, self._sign(ctx, layer["out"].input_beta))
            x1 = F.layer_norm(x + ao, [h], layer["norm1"][0], layer["norm1"][1], enc_eps)
            y1 = layer["linear1"](paddle, self._sign(x1, layer["linear1"].input_beta))
            f2 = layer["linear2"](paddle, self._ffn2_input(y1, layer["linear2"]))
            x = F.layer_norm(x1 + f2, [h], layer["norm2"][0], layer["norm2"][1], enc_eps)
        if restore and x.shape[1] < seq_len:
            x = restore_tokens(buffer, positions, x)
        weight, bias = self._head
        if self._pooler is not None:
            pooled = paddle.tanh(self._pooler(paddle, self._sign(x[:, 0], self._pooler.input_beta)))
            logits = paddle.matmul(pooled, weight) + bias
        else:
            logits = paddle.matmul(x, weight) + bias
        return logits.numpy(), x.numpy()

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"SimulatedBertEngine({m['architecture']}, preset={m['preset']!r}, layers={m['num_layers']}, "
            f"hidden={m['hidden_size']}, attention={m['attention']}, backend=simulated)"
        )
