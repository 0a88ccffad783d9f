// Paddle custom operators of the paddle_binbert engine (PD_BUILD_OP), over the C kernels of
// binbert_kernels.cc and the Paddle-free whole-network forward pass of binbert_forward.cc (which
// paddle_binbert.runtime also compiles, without Paddle, into its own shared library).
//
//   binbert_cpu_info      -> [best ISA, CPUs available to the process]
//   binbert_pack          floats -> packed activation bits (+ per-row popcount), quantizer on the fly
//   binbert_gemm          packed bits x weight panels -> alpha * dot + bias
//   binbert_gemm_q        the same, output quantized to bits on the fly (next layer's input quantizer)
//   binbert_linear        pack + gemm: y = alpha_j * dot(Q_a(x_t), w_j) + b_j
//   binbert_attention     BiBERT bool attention / BiT softmax attention / all-ones (BWN) attention
//   binbert_bert_forward  the whole packed BERT (embeddings, encoder, pooler, head) in one call
//   binbert_ceiling       register-only popcount micro-benchmark
//   binbert_gemm_bench    binary GEMM micro-benchmark on random bits
//   binbert_profile       per-stage times of binbert_bert_forward (profiling on) and thread-pool statistics
//
// Packed tensors travel as int64 (Paddle has no uint64); the bits are reinterpreted, never converted.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "paddle/extension.h"

#include "binbert_forward.h"
#include "binbert_kernels.h"

namespace {

constexpr int kPanel = 48;

inline int64_t words_for(int64_t k) { return (k + 63) / 64; }

// ISA / thread checks shared with the whole-network operator (binbert_forward.cc), errors as Paddle errors.
int check_isa(int isa) {
  try {
    return binbert::checked_isa(isa);
  } catch (const binbert::Error& err) {
    PD_THROW(err.what());
  }
  return 0;  // not reached
}

int check_threads(int n) { return binbert::checked_threads(n); }

const uint64_t* bits_of(const paddle::Tensor& t) { return reinterpret_cast<const uint64_t*>(t.data<int64_t>()); }

void need(const paddle::Tensor& t, int64_t numel, paddle::DataType dt, const std::string& what) {
  PD_CHECK(t.dtype() == dt, "binbert: tensor ", what, " has the wrong dtype");
  PD_CHECK(t.numel() >= numel, "binbert: tensor ", what, " has ", t.numel(), " elements, needs ", numel);
}

}  // namespace

// Shape / dtype functions (named functions: PD_INFER_SHAPE needs a function address).
std::vector<std::vector<int64_t>> CpuInfoShape(const std::vector<int64_t>&) { return {{2}}; }
std::vector<paddle::DataType> CpuInfoDtype(const paddle::DataType&) { return {paddle::DataType::INT32}; }
std::vector<std::vector<int64_t>> PackShape(const std::vector<int64_t>& x, const std::vector<int64_t>&) {
  return {{x[0], (x[1] + 63) / 64}, {x[0]}};
}
std::vector<paddle::DataType> PackDtype(const paddle::DataType&, const paddle::DataType&) {
  return {paddle::DataType::INT64, paddle::DataType::INT32};
}
std::vector<std::vector<int64_t>> LinearShape(const std::vector<int64_t>& x, const std::vector<int64_t>&,
                                              const std::vector<int64_t>&, const std::vector<int64_t>& a,
                                              const std::vector<int64_t>&) {
  return {{x[0], a[0]}};
}
std::vector<paddle::DataType> Float5Dtype(const paddle::DataType&, const paddle::DataType&, const paddle::DataType&,
                                          const paddle::DataType&, const paddle::DataType&) {
  return {paddle::DataType::FLOAT32};
}
std::vector<std::vector<int64_t>> AttentionShape(const std::vector<int64_t>& q, const std::vector<int64_t>&,
                                                 const std::vector<int64_t>&, const std::vector<int64_t>&,
                                                 const std::vector<int64_t>&, const std::vector<int64_t>&,
                                                 const std::vector<int64_t>&) {
  return {q};
}
std::vector<paddle::DataType> AttentionDtype(const paddle::DataType&, const paddle::DataType&,
                                             const paddle::DataType&, const paddle::DataType&,
                                             const paddle::DataType&, const paddle::DataType&,
                                             const paddle::DataType&) {
  return {paddle::DataType::FLOAT32};
}
std::vector<std::vector<int64_t>> CeilingShape(const std::vector<int64_t>&) { return {{1}}; }
std::vector<paddle::DataType> CeilingDtype(const paddle::DataType&) { return {paddle::DataType::FLOAT64}; }

// ------------------------------------------------------------------------------------------ info
std::vector<paddle::Tensor> CpuInfo(const paddle::Tensor& x) {
  auto out = paddle::empty({2}, paddle::DataType::INT32, paddle::CPUPlace());
  out.data<int32_t>()[0] = bb_best_isa();
  out.data<int32_t>()[1] = bb_max_threads();
  return {out};
}

PD_BUILD_OP(binbert_cpu_info)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(CpuInfo))
    .SetInferShapeFn(PD_INFER_SHAPE(CpuInfoShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CpuInfoDtype));

// ------------------------------------------------------------------------------------------ pack
// x [M, K] float32, beta [K] float32 (zeros for a plain sign) -> bits int64 [M, ceil(K/64)], pop int32 [M].
// act: 0 none, 1 relu, 2 gelu; quant: 0 sgn(v - beta), 1 unsigned 1[clip((v - beta)/alpha, 0, 1) + 0.5 >= 1].
std::vector<paddle::Tensor> Pack(const paddle::Tensor& x, const paddle::Tensor& beta, int act, int quant,
                                 float qalpha, float gelu_thr, bool use_beta, int isa, int threads) {
  PD_CHECK(x.shape().size() == 2, "binbert_pack: x must be 2-D [M, K]");
  const int64_t m = x.shape()[0], k = x.shape()[1], kw = words_for(k);
  if (use_beta) need(beta, k, paddle::DataType::FLOAT32, "beta");
  auto bits = paddle::empty({m, kw}, paddle::DataType::INT64, paddle::CPUPlace());
  auto pop = paddle::empty({m}, paddle::DataType::INT32, paddle::CPUPlace());
  bb_pack_rows(check_isa(isa), check_threads(threads), x.data<float>(), k, m, k,
               use_beta ? beta.data<float>() : nullptr, act, quant, qalpha, gelu_thr,
               reinterpret_cast<uint64_t*>(bits.data<int64_t>()), kw, pop.data<int32_t>());
  return {bits, pop};
}

PD_BUILD_OP(binbert_pack)
    .Inputs({"X", "Beta"})
    .Outputs({"Bits", "Pop"})
    .Attrs({"act: int", "quant: int", "qalpha: float", "gelu_thr: float", "use_beta: bool", "isa: int",
            "threads: int"})
    .SetKernelFn(PD_KERNEL(Pack))
    .SetInferShapeFn(PD_INFER_SHAPE(PackShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(PackDtype));

// ------------------------------------------------------------------------------------------ gemm
// xbits [M, KW] int64, pop [M] int32, panels [P, KW, 48] int64, alpha/bias [N] -> y [M, N].
std::vector<paddle::Tensor> Gemm(const paddle::Tensor& xbits, const paddle::Tensor& pop, const paddle::Tensor& panels,
                                 const paddle::Tensor& alpha, const paddle::Tensor& bias, int k, int mode, int isa,
                                 int threads) {
  PD_CHECK(xbits.shape().size() == 2 && panels.shape().size() == 3, "binbert_gemm: bad ranks");
  const int64_t m = xbits.shape()[0], kw = xbits.shape()[1], n = alpha.numel();
  PD_CHECK(kw == words_for(k), "binbert_gemm: xbits has ", kw, " words per row, k=", k, " needs ", words_for(k));
  PD_CHECK(panels.shape()[1] == kw && panels.shape()[2] == kPanel, "binbert_gemm: panels must be [P, KW, 48]");
  PD_CHECK(panels.shape()[0] * kPanel >= n, "binbert_gemm: panels hold fewer rows than alpha");
  need(bias, n, paddle::DataType::FLOAT32, "bias");
  if (mode == 1) need(pop, m, paddle::DataType::INT32, "pop");
  auto y = paddle::empty({m, n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bb_gemm(check_isa(isa), check_threads(threads), bits_of(xbits), kw, m, bits_of(panels), n, kw, k, mode,
          pop.data<int32_t>(), alpha.data<float>(), bias.data<float>(), y.data<float>(), n);
  return {y};
}

PD_BUILD_OP(binbert_gemm)
    .Inputs({"XBits", "Pop", "Panels", "Alpha", "Bias"})
    .Outputs({"Y"})
    .Attrs({"k: int", "mode: int", "isa: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(Gemm))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(Float5Dtype));

// ------------------------------------------------------------------------------------------ gemm_q
// Binary GEMM with a quantized output: bits of Q(alpha * dot + bias) where Q is the activation
// quantizer (act, quant, qbeta, qalpha, gelu_thr) of binbert_pack -> bits int64 [M, ceil(N/64)], pop [M].
std::vector<paddle::Tensor> GemmQ(const paddle::Tensor& xbits, const paddle::Tensor& pop, const paddle::Tensor& panels,
                                  const paddle::Tensor& alpha, const paddle::Tensor& bias, const paddle::Tensor& qbeta,
                                  int k, int mode, int act, int quant, float qalpha, float gelu_thr, bool use_qbeta,
                                  int isa, int threads) {
  PD_CHECK(xbits.shape().size() == 2 && panels.shape().size() == 3, "binbert_gemm_q: bad ranks");
  const int64_t m = xbits.shape()[0], kw = xbits.shape()[1], n = alpha.numel(), nw = words_for(n);
  PD_CHECK(kw == words_for(k), "binbert_gemm_q: xbits has ", kw, " words per row, k=", k, " needs ", words_for(k));
  PD_CHECK(panels.shape()[1] == kw && panels.shape()[2] == kPanel, "binbert_gemm_q: panels must be [P, KW, 48]");
  PD_CHECK(panels.shape()[0] * kPanel >= n, "binbert_gemm_q: panels hold fewer rows than alpha");
  need(bias, n, paddle::DataType::FLOAT32, "bias");
  if (use_qbeta) need(qbeta, n, paddle::DataType::FLOAT32, "qbeta");
  if (mode == 1) need(pop, m, paddle::DataType::INT32, "pop");
  auto ybits = paddle::empty({m, nw}, paddle::DataType::INT64, paddle::CPUPlace());
  auto ypop = paddle::empty({m}, paddle::DataType::INT32, paddle::CPUPlace());
  bb_gemm_q(check_isa(isa), check_threads(threads), bits_of(xbits), kw, m, bits_of(panels), n, kw, k, mode,
            pop.data<int32_t>(), alpha.data<float>(), bias.data<float>(),
            reinterpret_cast<uint64_t*>(ybits.data<int64_t>()), nw, ypop.data<int32_t>(),
            use_qbeta ? qbeta.data<float>() : nullptr, act, quant, qalpha, gelu_thr);
  return {ybits, ypop};
}

std::vector<std::vector<int64_t>> GemmQShape(const std::vector<int64_t>& x, const std::vector<int64_t>&,
                                             const std::vector<int64_t>&, const std::vector<int64_t>& a,
                                             const std::vector<int64_t>&, const std::vector<int64_t>&) {
  return {{x[0], (a[0] + 63) / 64}, {x[0]}};
}

std::vector<paddle::DataType> GemmQDtype(const paddle::DataType&, const paddle::DataType&, const paddle::DataType&,
                                         const paddle::DataType&, const paddle::DataType&, const paddle::DataType&) {
  return {paddle::DataType::INT64, paddle::DataType::INT32};
}

PD_BUILD_OP(binbert_gemm_q)
    .Inputs({"XBits", "Pop", "Panels", "Alpha", "Bias", "QBeta"})
    .Outputs({"YBits", "YPop"})
    .Attrs({"k: int", "mode: int", "act: int", "quant: int", "qalpha: float", "gelu_thr: float", "use_qbeta: bool",
            "isa: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(GemmQ))
    .SetInferShapeFn(PD_INFER_SHAPE(GemmQShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GemmQDtype));

// ------------------------------------------------------------------------------------------ linear
// y = alpha_j * dot(Q_a(x_t), w_j) + b_j with the activation bits packed on the fly.
std::vector<paddle::Tensor> Linear(const paddle::Tensor& x, const paddle::Tensor& beta, const paddle::Tensor& panels,
                                   const paddle::Tensor& alpha, const paddle::Tensor& bias, int act, int quant,
                                   float qalpha, float gelu_thr, bool use_beta, int isa, int threads) {
  PD_CHECK(x.shape().size() == 2, "binbert_linear: x must be 2-D [M, K]");
  const int64_t m = x.shape()[0], k = x.shape()[1], kw = words_for(k), n = alpha.numel();
  PD_CHECK(panels.shape().size() == 3 && panels.shape()[1] == kw && panels.shape()[2] == kPanel,
           "binbert_linear: panels must be [P, ceil(K/64), 48]");
  PD_CHECK(panels.shape()[0] * kPanel >= n, "binbert_linear: panels hold fewer rows than alpha");
  need(bias, n, paddle::DataType::FLOAT32, "bias");
  if (use_beta) need(beta, k, paddle::DataType::FLOAT32, "beta");
  const int is = check_isa(isa), nt = check_threads(threads);
  std::vector<uint64_t> bits(static_cast<size_t>(m * kw));
  std::vector<int32_t> pop(static_cast<size_t>(m));
  bb_pack_rows(is, nt, x.data<float>(), k, m, k, use_beta ? beta.data<float>() : nullptr, act, quant, qalpha,
               gelu_thr, bits.data(), kw, pop.data());
  auto y = paddle::empty({m, n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bb_gemm(is, nt, bits.data(), kw, m, bits_of(panels), n, kw, k, quant, pop.data(), alpha.data<float>(),
          bias.data<float>(), y.data<float>(), n);
  return {y};
}

PD_BUILD_OP(binbert_linear)
    .Inputs({"X", "Beta", "Panels", "Alpha", "Bias"})
    .Outputs({"Y"})
    .Attrs({"act: int", "quant: int", "qalpha: float", "gelu_thr: float", "use_beta: bool", "isa: int",
            "threads: int"})
    .SetKernelFn(PD_KERNEL(Linear))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(Float5Dtype));

// ------------------------------------------------------------------------------------------ attention
// q, k, v [B, L, H] (linear outputs before their sign quantizers), mask [B, L] additive (0 / -1e4),
// bq/bk/bv [H] betas of the Q/K/V quantizers -> context [B, L, H].
// variant 0 (BiBERT): A = 1[fl(dot * cqk) + mask > 0], ctx = (2 pc(A & V+) - pc(A)) * cpv
// variant 1 (BiT):    P = softmax(fl(dot * cqk) + mask), A = elastic_unsigned(P), same ctx
// variant 2 (BWN):    every real key's probability quantizes to +1, ctx = sum_{j real} sgn(v_j) * cpv
// In every variant A = 0 at a masked key (mask <= -1), whatever its quantized probability.
std::vector<paddle::Tensor> Attention(const paddle::Tensor& q, const paddle::Tensor& k, const paddle::Tensor& v,
                                      const paddle::Tensor& mask, const paddle::Tensor& bq, const paddle::Tensor& bk,
                                      const paddle::Tensor& bv, int variant, int heads, float cqk, float alpha_p,
                                      float beta_p, float cpv, bool use_beta, int isa, int threads) {
  PD_CHECK(q.shape().size() == 3, "binbert_attention: q must be [B, L, H]");
  const int64_t b = q.shape()[0], l = q.shape()[1], h = q.shape()[2];
  PD_CHECK(heads > 0 && h % heads == 0, "binbert_attention: hidden ", h, " not divisible by heads ", heads);
  PD_CHECK(k.shape() == q.shape() && v.shape() == q.shape(), "binbert_attention: q, k, v shapes differ");
  need(mask, b * l, paddle::DataType::FLOAT32, "mask");
  if (use_beta) {
    need(bq, h, paddle::DataType::FLOAT32, "bq");
    need(bk, h, paddle::DataType::FLOAT32, "bk");
    need(bv, h, paddle::DataType::FLOAT32, "bv");
  }
  // interleave q, k, v into one [B*L, 3H] buffer, the layout the fused QKV GEMM produces
  std::vector<float> qkv(static_cast<size_t>(b * l * 3 * h));
  const float *qp = q.data<float>(), *kp = k.data<float>(), *vp = v.data<float>();
  for (int64_t r = 0; r < b * l; ++r) {
    std::copy(qp + r * h, qp + (r + 1) * h, qkv.begin() + r * 3 * h);
    std::copy(kp + r * h, kp + (r + 1) * h, qkv.begin() + r * 3 * h + h);
    std::copy(vp + r * h, vp + (r + 1) * h, qkv.begin() + r * 3 * h + 2 * h);
  }
  auto ctx = paddle::empty({b, l, h}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  bb_attention(check_isa(isa), check_threads(threads), variant, qkv.data(), 3 * h, 0, h, 2 * h, b, l, h, heads,
               mask.data<float>(), use_beta ? bq.data<float>() : nullptr, use_beta ? bk.data<float>() : nullptr,
               use_beta ? bv.data<float>() : nullptr, cqk, alpha_p, beta_p, cpv, ctx.data<float>(), h, nullptr, 0,
               nullptr, nullptr);
  return {ctx};
}

PD_BUILD_OP(binbert_attention)
    .Inputs({"Q", "K", "V", "Mask", "BQ", "BK", "BV"})
    .Outputs({"Ctx"})
    .Attrs({"variant: int", "heads: int", "cqk: float", "alpha_p: float", "beta_p: float", "cpv: float",
            "use_beta: bool", "isa: int", "threads: int"})
    .SetKernelFn(PD_KERNEL(Attention))
    .SetInferShapeFn(PD_INFER_SHAPE(AttentionShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AttentionDtype));

// ------------------------------------------------------------------------------------------ ceiling
std::vector<paddle::Tensor> Ceiling(const paddle::Tensor& x, int threads, int64_t iters, int kind) {
  auto out = paddle::empty({1}, paddle::DataType::FLOAT64, paddle::CPUPlace());
  out.data<double>()[0] = bb_ceiling(check_threads(threads), iters, kind);
  return {out};
}

PD_BUILD_OP(binbert_ceiling)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"threads: int", "iters: int64_t", "kind: int"})
    .SetKernelFn(PD_KERNEL(Ceiling))
    .SetInferShapeFn(PD_INFER_SHAPE(CeilingShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CeilingDtype));

// ------------------------------------------------------------------------------------------ gemm bench
// [median seconds, binary MAC/s] of `reps` binary GEMMs [m, k] x [n, k] on random bits.
std::vector<paddle::Tensor> GemmBench(const paddle::Tensor& x, int isa, int threads, int m, int n, int k, int reps) {
  auto out = paddle::empty({2}, paddle::DataType::FLOAT64, paddle::CPUPlace());
  double rate = 0.0;
  out.data<double>()[0] = bb_gemm_bench(check_isa(isa), check_threads(threads), m, n, k, reps, &rate);
  out.data<double>()[1] = rate;
  return {out};
}

std::vector<std::vector<int64_t>> GemmBenchShape(const std::vector<int64_t>&) { return {{2}}; }

PD_BUILD_OP(binbert_gemm_bench)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"isa: int", "threads: int", "m: int", "n: int", "k: int", "reps: int"})
    .SetKernelFn(PD_KERNEL(GemmBench))
    .SetInferShapeFn(PD_INFER_SHAPE(GemmBenchShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CeilingDtype));

// ------------------------------------------------------------------------------------------ whole model
// The network is orchestrated by binbert::bert_forward (binbert_forward.cc, no Paddle dependency,
// shared with the C API of paddle_binbert.runtime); this operator hands it views of its tensors and
// copies the outputs into Paddle tensors. Layout of `W`, `icfg` and `fcfg`: binbert_forward.h.
namespace {

binbert::TensorView view_of(const paddle::Tensor& t) {
  binbert::TensorView v;
  v.numel = t.numel();
  const auto shape = t.shape();
  v.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size() && i < 3; ++i) v.dims[i] = shape[i];
  if (t.dtype() == paddle::DataType::FLOAT32) {
    v.dtype = binbert::kFloat32;
    v.data = t.data<float>();
  } else if (t.dtype() == paddle::DataType::INT64) {
    v.dtype = binbert::kInt64;
    v.data = t.data<int64_t>();
  } else if (t.dtype() == paddle::DataType::INT32) {
    v.dtype = binbert::kInt32;
    v.data = t.data<int32_t>();
  }
  return v;
}

}  // namespace

std::vector<paddle::Tensor> BertForward(const paddle::Tensor& ids, const paddle::Tensor& types,
                                        const paddle::Tensor& mask, const std::vector<paddle::Tensor>& W,
                                        const std::vector<int>& icfg, const std::vector<float>& fcfg) {
  PD_CHECK(ids.shape().size() == 2, "binbert_bert_forward: input_ids must be [batch, seq_len]");
  PD_CHECK(ids.dtype() == paddle::DataType::INT64 && types.dtype() == paddle::DataType::INT64,
           "binbert_bert_forward: input_ids / token_type_ids must be int64");
  PD_CHECK(types.shape() == ids.shape(), "binbert_bert_forward: token_type_ids shape differs from input_ids");
  const int64_t B = ids.shape()[0], L = ids.shape()[1];
  std::vector<binbert::TensorView> views;
  views.reserve(W.size());
  for (const auto& t : W) views.push_back(view_of(t));
  binbert::ForwardOutputs out;
  try {
    out = binbert::bert_forward(ids.data<int64_t>(), types.data<int64_t>(), B, L, view_of(mask), views, icfg, fcfg);
  } catch (const binbert::Error& err) {
    PD_THROW(err.what());
  }
  auto hidden = paddle::empty({B, out.hidden_len, out.hidden_size}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  std::copy(out.hidden, out.hidden + B * out.hidden_len * out.hidden_size, hidden.data<float>());
  paddle::Tensor logits;
  if (icfg[binbert::kTask] == 0)
    logits = paddle::empty({B, out.num_classes}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  else
    logits = paddle::empty({B, out.hidden_len, out.num_classes}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  std::copy(out.logits, out.logits + out.logit_rows * out.num_classes, logits.data<float>());
  return {logits, hidden};
}

std::vector<std::vector<int64_t>> BertForwardShape(const std::vector<int64_t>& ids, const std::vector<int64_t>&,
                                                   const std::vector<int64_t>&,
                                                   const std::vector<std::vector<int64_t>>& w,
                                                   const std::vector<int>& icfg, const std::vector<float>&) {
  const int64_t C = w.empty() ? 1 : w.back()[0];
  const int64_t H = icfg.size() > binbert::kHidden ? icfg[binbert::kHidden] : -1;
  if (icfg.size() > binbert::kTask && icfg[binbert::kTask] == 0) return {{ids[0], C}, {ids[0], ids[1], H}};
  return {{ids[0], ids[1], C}, {ids[0], ids[1], H}};
}

std::vector<paddle::DataType> BertForwardDtype(const paddle::DataType&, const paddle::DataType&,
                                               const paddle::DataType&, const std::vector<paddle::DataType>&) {
  return {paddle::DataType::FLOAT32, paddle::DataType::FLOAT32};
}

PD_BUILD_OP(binbert_bert_forward)
    .Inputs({"InputIds", "TokenTypeIds", "Mask", paddle::Vec("W")})
    .Outputs({"Logits", "Hidden"})
    .Attrs({"icfg: std::vector<int>", "fcfg: std::vector<float>"})
    .SetKernelFn(PD_KERNEL(BertForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BertForwardShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BertForwardDtype));

// ------------------------------------------------------------------------------------------ profile
// Accumulated stage times of binbert_bert_forward calls made with profiling on, then reset:
// [embed+LN, activation packing, QKV GEMM, attention, out-proj GEMM, LayerNorms, FFN1 GEMM,
//  FFN2 GEMM, pooler+head, total, number of calls, then the thread pool's statistics: seconds the
//  caller waited for helpers, parallel jobs, chunks run by helpers, chunks in total].
std::vector<paddle::Tensor> ProfileRead(const paddle::Tensor& x) {
  auto out = paddle::empty({binbert::kProfileSize}, paddle::DataType::FLOAT64, paddle::CPUPlace());
  binbert::profile_read(out.data<double>());
  return {out};
}

std::vector<std::vector<int64_t>> ProfileShape(const std::vector<int64_t>&) { return {{binbert::kProfileSize}}; }

PD_BUILD_OP(binbert_profile)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ProfileRead))
    .SetInferShapeFn(PD_INFER_SHAPE(ProfileShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CeilingDtype));
