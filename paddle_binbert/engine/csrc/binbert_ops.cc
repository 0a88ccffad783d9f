// Paddle custom operators of the paddle_binbert engine (PD_BUILD_OP), over the C kernels of
// binbert_kernels.cc.
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

extern "C" {
int bb_best_isa();
int bb_max_threads();
void bb_pack_rows(int isa, int nthreads, const float* x, int64_t ldx, int64_t m, int64_t k, const float* beta, int act,
                  int quant, float qalpha, float thr, uint64_t* out, int64_t ldo, int32_t* pop);
void bb_gemm(int isa, int nthreads, const uint64_t* x, int64_t ldx, int64_t m, const uint64_t* w, int64_t n,
             int64_t kw, int64_t k, int mode, const int32_t* xpop, const float* alpha, const float* bias, float* y,
             int64_t ldy);
void bb_gemm_q(int isa, int nthreads, const uint64_t* x, int64_t ldx, int64_t m, const uint64_t* w, int64_t n,
               int64_t kw, int64_t k, int mode, const int32_t* xpop, const float* alpha, const float* bias,
               uint64_t* ybits, int64_t ldyb, int32_t* ypop, const float* qbeta, int act, int quant, float qalpha,
               float thr);
void bb_attention(int isa, int nthreads, int variant, const float* qkv, int64_t ld, int64_t qoff, int64_t koff,
                  int64_t voff, int64_t b, int64_t l, int64_t h, int64_t heads, const float* mask, const float* bq,
                  const float* bk, const float* bv, float cqk, float alpha_p, float beta_p, float cpv, float* ctx,
                  int64_t ldc, uint64_t* out_bits, int64_t ldo, const float* obeta, double* sig);
void bb_add_layernorm(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                      int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                      uint64_t* bits, int64_t ldb, const float* qbeta);
int64_t bb_embed(int isa, int nthreads, const int64_t* ids, const int64_t* types, int64_t b, int64_t l,
                 const uint64_t* wbits, int64_t hw, const float* walpha, int64_t vocab, const float* pos,
                 int64_t npos, const float* temb, int64_t ntype, int64_t h, float* out);
double bb_ceiling(int nthreads, int64_t iters, int kind);
void bb_pool_stats(double* out);
double bb_gemm_bench(int isa, int nthreads, int64_t m, int64_t n, int64_t k, int reps, double* macs_per_s);
}

namespace {

constexpr int kPanel = 48;

inline int64_t words_for(int64_t k) { return (k + 63) / 64; }

int check_isa(int isa) {
  const int best = bb_best_isa();
  if (isa < 0) return best;
  PD_CHECK(isa <= 2, "binbert: unknown ISA code ", isa, " (0 portable, 1 avx2, 2 avx512)");
  PD_CHECK(isa <= best, "binbert: ISA ", isa, " requested but this CPU supports at most ", best,
           " (0 portable, 1 avx2, 2 avx512-vpopcntdq)");
  return isa;
}

int check_threads(int n) { return n > 0 ? n : bb_max_threads(); }

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
// Layout of `W` (built by paddle_binbert/engine/runner.py, kept in sync with the constants there):
//   0 word bits [V, ceil(H/64)] int64, 1 word alpha [V], 2 position [P, H], 3 token type [T, H],
//   4 / 5 embedding LayerNorm weight / bias,
//   per layer l, base = 6 + 42 l:
//     base + 5 j (j = 0 q / fused qkv, 1 k, 2 v, 3 out, 4 ffn1, 5 ffn2): panels, alpha, bias, input beta, input alpha
//     base + 30: cqk, cpv, alpha_p, beta_p ([1] each), bq, bk, bv ([H] each), (unused)
//     base + 38: norm1 weight, norm1 bias, norm2 weight, norm2 bias
//   then the pooler linear (5 tensors as above) and the head weight [H, C], head bias [C].
namespace {
constexpr int kEmbTensors = 6;
constexpr int kLayerTensors = 42;
constexpr int kAttnOff = 30;
constexpr int kNormOff = 38;

enum Cfg {
  kLayers = 0,
  kHidden,
  kHeads,
  kInter,
  kTask,
  kLabels,
  kAttn,
  kQkvMode,
  kFfnAct,
  kFfn2Quant,
  kHasBeta,
  kIsa,
  kThreads,
  kPoolTanh,
  kProfile,
  kNumCfg
};

// Per-stage wall time of binbert_bert_forward, accumulated when icfg[kProfile] != 0 and read
// (and reset) by the binbert_profile operator.
enum Stage {
  kEmbed = 0,
  kPackStage,
  kGemmQkv,
  kAttention,
  kGemmOut,
  kLayerNorm,
  kGemmFfn1,
  kGemmFfn2,
  kHead,
  kTotal,
  kStages
};
double g_profile[kStages] = {0};
int64_t g_profile_calls = 0;

struct StageTimer {
  bool on;
  std::chrono::steady_clock::time_point t0;
  explicit StageTimer(bool enabled) : on(enabled) {
    if (on) t0 = std::chrono::steady_clock::now();
  }
  void lap(int stage) {
    if (!on) return;
    const auto t1 = std::chrono::steady_clock::now();
    g_profile[stage] += std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
  }
};

struct Lin {
  const uint64_t* w;
  const float* alpha;
  const float* bias;
  const float* beta;
  float in_alpha;
  int64_t n, k;
};

Lin get_lin(const std::vector<paddle::Tensor>& t, int idx, int64_t n, int64_t k, bool has_beta, const char* what) {
  const int64_t kw = words_for(k), panels = (n + kPanel - 1) / kPanel;
  need(t[idx], panels * kw * kPanel, paddle::DataType::INT64, std::string(what) + ".panels");
  need(t[idx + 1], n, paddle::DataType::FLOAT32, std::string(what) + ".alpha");
  need(t[idx + 2], n, paddle::DataType::FLOAT32, std::string(what) + ".bias");
  if (has_beta) need(t[idx + 3], k, paddle::DataType::FLOAT32, std::string(what) + ".input_beta");
  need(t[idx + 4], 1, paddle::DataType::FLOAT32, std::string(what) + ".input_alpha");
  return Lin{bits_of(t[idx]), t[idx + 1].data<float>(), t[idx + 2].data<float>(),
             has_beta ? t[idx + 3].data<float>() : nullptr, t[idx + 4].data<float>()[0], n, k};
}

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

struct Workspace {
  std::vector<float> x, x1, qkv, ctx, ao, f2, pooled;
  std::vector<uint64_t> xb, cb, fb;
  std::vector<int32_t> pop;
};

// Drop-and-Restore token selection of one layer (Length-Adaptive Transformer, Kim & Cho 2021):
// per batch row, the `keep` tokens with the largest significance s_j = sum over heads of sig
// ([B, heads, lc]); padding keys get -1 (never kept over a real token), position 0 ([CLS]) 1e30
// (always kept); ties go to the earlier position; the kept indices are returned in position order
// ([B, keep]), as paddle_binbert.length_adaptive.select_tokens does.
std::vector<int64_t> select_tokens(const std::vector<double>& sig, const float* mask, int64_t B, int64_t heads,
                                   int64_t lc, int64_t keep) {
  std::vector<int64_t> idx(static_cast<size_t>(B * keep));
  std::vector<double> s(static_cast<size_t>(lc));
  std::vector<int64_t> order(static_cast<size_t>(lc));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < lc; ++j) {
      double v = 0.0;
      for (int64_t h = 0; h < heads; ++h) v += sig[(b * heads + h) * lc + j];
      s[j] = mask[b * lc + j] > -1.f ? v : -1.0;
    }
    s[0] = 1e30;
    for (int64_t j = 0; j < lc; ++j) order[j] = j;
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return s[x] > s[y]; });
    std::sort(order.begin(), order.begin() + keep);
    std::copy(order.begin(), order.begin() + keep, idx.begin() + b * keep);
  }
  return idx;
}

// Rows `idx` ([B, keep] indices into rows of lc per batch) of a [B * lc, ld] matrix moved to the
// front, in place: row b * keep + k <- row b * lc + idx[b, k] (a destination never follows its source).
template <typename T>
void compact_rows(T* m, int64_t ld, const std::vector<int64_t>& idx, int64_t B, int64_t lc, int64_t keep) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < keep; ++k) {
      const int64_t src = b * lc + idx[b * keep + k], dst = b * keep + k;
      if (src != dst) std::memmove(m + dst * ld, m + src * ld, static_cast<size_t>(ld) * sizeof(T));
    }
}

}  // namespace

std::vector<paddle::Tensor> BertForward(const paddle::Tensor& ids, const paddle::Tensor& types,
                                        const paddle::Tensor& mask, const std::vector<paddle::Tensor>& W,
                                        const std::vector<int>& icfg, const std::vector<float>& fcfg) {
  PD_CHECK(static_cast<int>(icfg.size()) >= kNumCfg && fcfg.size() >= 3, "binbert_bert_forward: bad config");
  PD_CHECK(ids.shape().size() == 2, "binbert_bert_forward: input_ids must be [batch, seq_len]");
  PD_CHECK(ids.dtype() == paddle::DataType::INT64 && types.dtype() == paddle::DataType::INT64,
           "binbert_bert_forward: input_ids / token_type_ids must be int64");
  PD_CHECK(types.shape() == ids.shape(), "binbert_bert_forward: token_type_ids shape differs from input_ids");
  const int64_t B = ids.shape()[0], L = ids.shape()[1], M = B * L;
  need(mask, M, paddle::DataType::FLOAT32, "attention mask");
  const int layers = icfg[kLayers], heads = icfg[kHeads];
  const int64_t H = icfg[kHidden], I = icfg[kInter], HW = words_for(H), IW = words_for(I);
  const int attn = icfg[kAttn], qkv_mode = icfg[kQkvMode], act = icfg[kFfnAct], q2 = icfg[kFfn2Quant];
  const bool has_beta = icfg[kHasBeta] != 0;
  const int isa = check_isa(icfg[kIsa]), nt = check_threads(icfg[kThreads]);
  const float emb_eps = fcfg[0], enc_eps = fcfg[1], gelu_thr = fcfg[2];
  const int64_t n_tensors = kEmbTensors + static_cast<int64_t>(layers) * kLayerTensors + 7;
  // Length configuration (Drop-and-Restore): icfg[kNumCfg + i] = token budget of layer i (<= 0: all
  // tokens). Without it (icfg of kNumCfg entries) every layer runs over every token.
  PD_CHECK(static_cast<int>(icfg.size()) == kNumCfg || static_cast<int>(icfg.size()) == kNumCfg + layers,
           "binbert_bert_forward: icfg must have ", kNumCfg, " entries, or ", kNumCfg + layers,
           " with a token budget per layer");
  const bool budgets = static_cast<int>(icfg.size()) == kNumCfg + layers;
  PD_CHECK(!budgets || icfg[kQkvMode] != 1,
           "binbert_bert_forward: length configurations need attention probabilities; the all-ones attention "
           "(BWN baseline) computes none");
  PD_CHECK(static_cast<int64_t>(W.size()) == n_tensors, "binbert_bert_forward: expected ", n_tensors,
           " weight tensors, got ", W.size());
  PD_CHECK(H % heads == 0, "binbert_bert_forward: hidden not divisible by heads");

  // ---- embeddings
  const int64_t vocab = W[1].numel();
  need(W[0], vocab * HW, paddle::DataType::INT64, "word_embeddings.bits");
  PD_CHECK(W[2].shape().size() == 2 && W[2].shape()[1] == H, "binbert: position embeddings must be [P, H]");
  PD_CHECK(W[3].shape().size() == 2 && W[3].shape()[1] == H, "binbert: token type embeddings must be [T, H]");
  need(W[4], H, paddle::DataType::FLOAT32, "embeddings.layer_norm.weight");
  need(W[5], H, paddle::DataType::FLOAT32, "embeddings.layer_norm.bias");

  thread_local Workspace ws;
  float* X = grow(ws.x, M * H);
  float* X1 = grow(ws.x1, M * H);
  float* QKV = grow(ws.qkv, M * 3 * H);
  float* CTX = grow(ws.ctx, M * H);
  float* AO = grow(ws.ao, M * H);
  float* F2 = grow(ws.f2, M * H);
  uint64_t* XB = grow(ws.xb, M * HW);
  uint64_t* CB = grow(ws.cb, M * HW);
  uint64_t* FB = grow(ws.fb, M * std::max(HW, IW));
  int32_t* POP = grow(ws.pop, M);

  const bool profile = static_cast<int>(icfg.size()) > kProfile && icfg[kProfile] != 0;
  const auto t_start = std::chrono::steady_clock::now();
  StageTimer tm(profile);
  const int64_t bad = bb_embed(isa, nt, ids.data<int64_t>(), types.data<int64_t>(), B, L, bits_of(W[0]), HW,
                               W[1].data<float>(), vocab, W[2].data<float>(), W[2].shape()[0], W[3].data<float>(),
                               W[3].shape()[0], H, X);
  PD_CHECK(bad == 0, "binbert_bert_forward: ", bad, " token ids / token type ids out of range (vocab ", vocab,
           ") or sequence longer than max_position_embeddings (", W[2].shape()[0], ")");
  // The input bits of a layer's first projection are packed by the LayerNorm that produces X.
  auto qkv_input_beta = [&](int li) -> const float* {
    if (!has_beta) return nullptr;
    const int base = kEmbTensors + li * kLayerTensors;
    const int first = qkv_mode == 1 ? base + 10 : base;  // q_proj (or v_proj when only V is used)
    need(W[first + 3], H, paddle::DataType::FLOAT32, "layer " + std::to_string(li) + " input_beta");
    return W[first + 3].data<float>();
  };
  bb_add_layernorm(isa, nt, X, H, nullptr, 0, M, H, W[4].data<float>(), W[5].data<float>(), emb_eps, X, H,
                   layers > 0 ? XB : nullptr, HW, layers > 0 ? qkv_input_beta(0) : nullptr);
  // current token count, rows and key mask; the original position of every row (Restore)
  int64_t Lc = L, Mc = M;
  std::vector<float> mask_cur;
  const float* maskp = mask.data<float>();
  std::vector<int64_t> pos;
  const bool restore = budgets && icfg[kTask] != 0;  // span heads need a vector at every position
  std::vector<float> R;                              // [B, L, H]: rows as they were when dropped
  std::vector<double> sig;
  tm.lap(kEmbed);

  for (int li = 0; li < layers; ++li) {
    const int base = kEmbTensors + li * kLayerTensors;
    const std::string pre = "layer " + std::to_string(li) + " ";
    const int64_t keep = budgets && icfg[kNumCfg + li] > 0 ? std::min<int64_t>(icfg[kNumCfg + li], Lc) : Lc;
    const bool drop = keep < Lc;
    if (drop) sig.assign(static_cast<size_t>(B * heads * Lc), 0.0);
    // ---- Q, K, V projections (XB holds the bits of X for the first of them)
    if (qkv_mode == 0) {  // one GEMM over [q; k; v] rows: the three share the sign quantizer of X
      const Lin lq = get_lin(W, base, 3 * H, H, false, (pre + "qkv").c_str());
      bb_gemm(isa, nt, XB, HW, Mc, lq.w, lq.n, HW, H, 0, nullptr, lq.alpha, lq.bias, QKV, 3 * H);
    } else if (qkv_mode == 1) {  // only V is needed (all-ones attention)
      const Lin lv = get_lin(W, base + 10, H, H, has_beta, (pre + "v_proj").c_str());
      bb_gemm(isa, nt, XB, HW, Mc, lv.w, lv.n, HW, H, 0, nullptr, lv.alpha, lv.bias, QKV + 2 * H, 3 * H);
    } else {  // separate input quantizers (BiT: own beta per projection)
      const char* names[3] = {"q_proj", "k_proj", "v_proj"};
      for (int j = 0; j < 3; ++j) {
        const Lin lj = get_lin(W, base + 5 * j, H, H, has_beta, (pre + names[j]).c_str());
        if (j > 0) {
          bb_pack_rows(isa, nt, X, H, Mc, H, lj.beta, 0, 0, 1.f, gelu_thr, XB, HW, nullptr);
          tm.lap(kPackStage);
        }
        bb_gemm(isa, nt, XB, HW, Mc, lj.w, lj.n, HW, H, 0, nullptr, lj.alpha, lj.bias, QKV + j * H, 3 * H);
      }
    }
    tm.lap(kGemmQkv);
    // ---- attention; with whole bytes per head it writes the out-projection's input bits directly
    const int ab = base + kAttnOff;
    for (int j = 0; j < 4; ++j) need(W[ab + j], 1, paddle::DataType::FLOAT32, pre + "attention scalars");
    const float* bq = nullptr;
    const float* bk = nullptr;
    const float* bv = nullptr;
    if (has_beta) {
      for (int j = 4; j < 7; ++j) need(W[ab + j], H, paddle::DataType::FLOAT32, pre + "attention betas");
      bq = W[ab + 4].data<float>();
      bk = W[ab + 5].data<float>();
      bv = W[ab + 6].data<float>();
    }
    const Lin lo = get_lin(W, base + 15, H, H, has_beta, (pre + "out_proj").c_str());
    const bool direct_bits = (H / heads) % 8 == 0;
    bb_attention(isa, nt, attn, QKV, 3 * H, 0, H, 2 * H, B, Lc, H, heads, maskp, bq, bk, bv, W[ab].data<float>()[0],
                 W[ab + 2].data<float>()[0], W[ab + 3].data<float>()[0], W[ab + 1].data<float>()[0], CTX, H,
                 direct_bits ? CB : nullptr, HW, lo.beta, drop ? sig.data() : nullptr);
    tm.lap(kAttention);
    if (!direct_bits) {
      bb_pack_rows(isa, nt, CTX, H, Mc, H, lo.beta, 0, 0, 1.f, gelu_thr, CB, HW, nullptr);
      tm.lap(kPackStage);
    }
    if (drop) {  // keep the `keep` most significant tokens (rows of X and of the out-projection's input bits)
      if (pos.empty()) {
        pos.resize(static_cast<size_t>(M));
        for (int64_t r = 0; r < M; ++r) pos[r] = r % L;
      }
      if (restore) {  // a dropped token keeps the output of the last layer it went through
        float* Rp = grow(R, M * H);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < Lc; ++j)
            std::copy(X + (b * Lc + j) * H, X + (b * Lc + j + 1) * H, Rp + (b * L + pos[b * Lc + j]) * H);
      }
      const std::vector<int64_t> idx = select_tokens(sig, maskp, B, heads, Lc, keep);
      compact_rows(X, H, idx, B, Lc, keep);
      compact_rows(CB, HW, idx, B, Lc, keep);
      std::vector<float> m2(static_cast<size_t>(B * keep));
      std::vector<int64_t> p2(static_cast<size_t>(B * keep));
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < keep; ++k) {
          m2[b * keep + k] = maskp[b * Lc + idx[b * keep + k]];
          p2[b * keep + k] = pos[b * Lc + idx[b * keep + k]];
        }
      mask_cur.swap(m2);
      pos.swap(p2);
      maskp = mask_cur.data();
      Lc = keep;
      Mc = B * keep;
      tm.lap(kAttention);
    }
    // ---- output projection, residual + LayerNorm (+ the bits of FFN1's input)
    bb_gemm(isa, nt, CB, HW, Mc, lo.w, lo.n, HW, H, 0, nullptr, lo.alpha, lo.bias, AO, H);
    tm.lap(kGemmOut);
    const int nb = base + kNormOff;
    for (int j = 0; j < 4; ++j) need(W[nb + j], H, paddle::DataType::FLOAT32, pre + "LayerNorm parameters");
    const Lin l1 = get_lin(W, base + 20, I, H, has_beta, (pre + "linear1").c_str());
    bb_add_layernorm(isa, nt, X, H, AO, H, Mc, H, W[nb].data<float>(), W[nb + 1].data<float>(), enc_eps, X1, H, XB, HW,
                     l1.beta);
    tm.lap(kLayerNorm);
    // ---- FFN: linear1 emits the bits of linear2's input quantizer (activation folded in) directly
    const Lin l2 = get_lin(W, base + 25, H, I, has_beta, (pre + "linear2").c_str());
    bb_gemm_q(isa, nt, XB, HW, Mc, l1.w, l1.n, HW, H, 0, nullptr, l1.alpha, l1.bias, FB, IW, q2 ? POP : nullptr, l2.beta,
              act, q2, l2.in_alpha, gelu_thr);
    tm.lap(kGemmFfn1);
    bb_gemm(isa, nt, FB, IW, Mc, l2.w, l2.n, IW, I, q2, POP, l2.alpha, l2.bias, F2, H);
    tm.lap(kGemmFfn2);
    const bool last = li + 1 == layers;
    bb_add_layernorm(isa, nt, X1, H, F2, H, Mc, H, W[nb + 2].data<float>(), W[nb + 3].data<float>(), enc_eps, X, H,
                     last ? nullptr : XB, HW, last ? nullptr : qkv_input_beta(li + 1));
    tm.lap(kLayerNorm);
  }

  // ---- head
  const int tail = kEmbTensors + layers * kLayerTensors;
  const paddle::Tensor& hw_t = W[tail + 5];
  const paddle::Tensor& hb_t = W[tail + 6];
  PD_CHECK(hw_t.shape().size() == 2 && hw_t.shape()[0] == H, "binbert: head weight must be [H, C]");
  const int64_t C = hw_t.shape()[1];
  need(hb_t, C, paddle::DataType::FLOAT32, "head bias");
  const float* hwp = hw_t.data<float>();
  const float* hbp = hb_t.data<float>();
  // Restore: the last layer's outputs back at their positions, the dropped rows from R
  const float* Xf = X;
  int64_t Lf = Lc;
  if (restore && Lc < L) {
    float* Rp = R.data();
    for (int64_t r = 0; r < Mc; ++r) std::copy(X + r * H, X + (r + 1) * H, Rp + ((r / Lc) * L + pos[r]) * H);
    Xf = Rp;
    Lf = L;
  }
  auto hidden = paddle::empty({B, Lf, H}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  std::copy(Xf, Xf + B * Lf * H, hidden.data<float>());
  paddle::Tensor logits;
  const float* feat = nullptr;
  int64_t rows = 0;
  if (icfg[kTask] == 0) {  // classification: pooler (quantized dense + tanh) on the first token
    const Lin lp = get_lin(W, tail, H, H, has_beta, "pooler.dense");
    float* P = grow(ws.pooled, B * H);
    bb_pack_rows(isa, nt, Xf, Lf * H, B, H, lp.beta, 0, 0, 1.f, gelu_thr, XB, HW, nullptr);
    bb_gemm(isa, nt, XB, HW, B, lp.w, lp.n, HW, H, 0, nullptr, lp.alpha, lp.bias, P, H);
    if (icfg[kPoolTanh])
      for (int64_t i = 0; i < B * H; ++i) P[i] = std::tanh(P[i]);
    feat = P;
    rows = B;
    logits = paddle::empty({B, C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  } else {  // token classification head (QA): every position
    feat = Xf;
    rows = B * Lf;
    logits = paddle::empty({B, Lf, C}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  }
  float* lg = logits.data<float>();
  for (int64_t r = 0; r < rows; ++r) {  // small FP head: double accumulation, serial
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      for (int64_t i = 0; i < H; ++i) s += static_cast<double>(feat[r * H + i]) * static_cast<double>(hwp[i * C + c]);
      lg[r * C + c] = static_cast<float>(s) + hbp[c];
    }
  }
  tm.lap(kHead);
  if (profile) {
    g_profile[kTotal] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    ++g_profile_calls;
  }
  return {logits, hidden};
}

std::vector<std::vector<int64_t>> BertForwardShape(const std::vector<int64_t>& ids, const std::vector<int64_t>&,
                                                   const std::vector<int64_t>&,
                                                   const std::vector<std::vector<int64_t>>& w,
                                                   const std::vector<int>& icfg, const std::vector<float>&) {
  const int64_t C = w.empty() ? 1 : w.back()[0];
  const int64_t H = icfg.size() > kHidden ? icfg[kHidden] : -1;
  if (icfg.size() > kTask && icfg[kTask] == 0) return {{ids[0], C}, {ids[0], ids[1], H}};
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
  auto out = paddle::empty({kStages + 5}, paddle::DataType::FLOAT64, paddle::CPUPlace());
  double* o = out.data<double>();
  for (int i = 0; i < kStages; ++i) {
    o[i] = g_profile[i];
    g_profile[i] = 0.0;
  }
  o[kStages] = static_cast<double>(g_profile_calls);
  g_profile_calls = 0;
  bb_pool_stats(o + kStages + 1);
  return {out};
}

std::vector<std::vector<int64_t>> ProfileShape(const std::vector<int64_t>&) { return {{kStages + 5}}; }

PD_BUILD_OP(binbert_profile)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(ProfileRead))
    .SetInferShapeFn(PD_INFER_SHAPE(ProfileShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CeilingDtype));
