// The whole packed BERT forward pass over the kernels of binbert_kernels.cc (see binbert_forward.h).
// No Paddle dependency: compiled into the Paddle operators (with binbert_ops.cc) and into the plain
// shared library of paddle_binbert.runtime (with binbert_capi.cc).

#include "binbert_forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "binbert_kernels.h"

namespace binbert {
namespace {

constexpr int kPanel = 48;  // weight rows per panel (binbert_kernels.cc)
constexpr int kEmbTensors = 6;
constexpr int kLayerTensors = 42;
constexpr int kAttnOff = 30;
constexpr int kNormOff = 38;
constexpr int64_t kRowBlock = 128;  // rows per block of the row-local part of a layer
constexpr int64_t kGroupRows = 512;  // rows (B * L) per group of sequences run through the whole network

inline int64_t words_for(int64_t k) { return (k + 63) / 64; }

void need(const TensorView& t, int64_t numel, DType dt, const std::string& what) {
  check(t.dtype == dt, "binbert: tensor ", what, " has the wrong dtype");
  check(t.data != nullptr || numel == 0, "binbert: tensor ", what, " has no data");
  check(t.numel >= numel, "binbert: tensor ", what, " has ", t.numel, " elements, needs ", numel);
}

const uint64_t* bits_of(const TensorView& t) { return static_cast<const uint64_t*>(t.data); }

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

Lin get_lin(const std::vector<TensorView>& t, int idx, int64_t n, int64_t k, bool has_beta, const std::string& what) {
  const int64_t kw = words_for(k), panels = (n + kPanel - 1) / kPanel;
  need(t[idx], panels * kw * kPanel, kInt64, what + ".panels");
  need(t[idx + 1], n, kFloat32, what + ".alpha");
  need(t[idx + 2], n, kFloat32, what + ".bias");
  if (has_beta) need(t[idx + 3], k, kFloat32, what + ".input_beta");
  need(t[idx + 4], 1, kFloat32, what + ".input_alpha");
  return Lin{bits_of(t[idx]),  t[idx + 1].as<float>(), t[idx + 2].as<float>(), has_beta ? t[idx + 3].as<float>() : nullptr,
             t[idx + 4].as<float>()[0], n, k};
}

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

struct Workspace {
  std::vector<float> x, x1, qkv_beta, ctx, ao, pooled, restore, logits;
  std::vector<uint64_t> xb, xk, xv, cb, fb, qb;
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

int checked_isa(int isa) {
  const int best = bb_best_isa();
  if (isa < 0) return best;
  check(isa <= 2, "binbert: unknown ISA code ", isa, " (0 portable, 1 avx2, 2 avx512)");
  check(isa <= best, "binbert: ISA ", isa, " requested but this CPU supports at most ", best,
        " (0 portable, 1 avx2, 2 avx512-vpopcntdq)");
  return isa;
}

int checked_threads(int n) { return n > 0 ? n : bb_max_threads(); }

namespace {

// The network on B sequences at once (every weight matrix sees their B * L rows together).
ForwardOutputs forward_rows(const int64_t* ids, const int64_t* types, int64_t B, int64_t L, const TensorView& mask,
                            const std::vector<TensorView>& W, const std::vector<int>& icfg,
                            const std::vector<float>& fcfg) {
  check(static_cast<int>(icfg.size()) >= kNumCfg && fcfg.size() >= 3, "binbert_bert_forward: bad config");
  check(B >= 0 && L >= 0 && (B * L == 0 || (ids != nullptr && types != nullptr)),
        "binbert_bert_forward: input_ids / token_type_ids must be [batch, seq_len] int64");
  const int64_t M = B * L;
  need(mask, M, kFloat32, "attention mask");
  const int layers = icfg[kLayers], heads = icfg[kHeads];
  const int64_t H = icfg[kHidden], I = icfg[kInter], HW = words_for(H), IW = words_for(I);
  const int attn = icfg[kAttn], qkv_mode = icfg[kQkvMode], act = icfg[kFfnAct], q2 = icfg[kFfn2Quant];
  const bool has_beta = icfg[kHasBeta] != 0;
  const int isa = checked_isa(icfg[kIsa]), nt = checked_threads(icfg[kThreads]);
  const float emb_eps = fcfg[0], enc_eps = fcfg[1], gelu_thr = fcfg[2];
  const int64_t n_tensors = kEmbTensors + static_cast<int64_t>(layers) * kLayerTensors + 7;
  // Length configuration (Drop-and-Restore): icfg[kNumCfg + i] = token budget of layer i (<= 0: all
  // tokens). Without it (icfg of kNumCfg entries) every layer runs over every token.
  check(static_cast<int>(icfg.size()) == kNumCfg || static_cast<int>(icfg.size()) == kNumCfg + layers,
        "binbert_bert_forward: icfg must have ", kNumCfg, " entries, or ", kNumCfg + layers,
        " with a token budget per layer");
  const bool budgets = static_cast<int>(icfg.size()) == kNumCfg + layers;
  check(!budgets || icfg[kQkvMode] != 1,
        "binbert_bert_forward: length configurations need attention probabilities; the all-ones attention "
        "(BWN baseline) computes none");
  check(static_cast<int64_t>(W.size()) == n_tensors, "binbert_bert_forward: expected ", n_tensors,
        " weight tensors, got ", W.size());
  check(heads > 0 && H % heads == 0, "binbert_bert_forward: hidden not divisible by heads");

  // ---- embeddings
  const int64_t vocab = W[1].numel;
  need(W[0], vocab * HW, kInt64, "word_embeddings.bits");
  need(W[1], vocab, kFloat32, "word_embeddings.alpha");
  check(W[2].ndim == 2 && W[2].dims[1] == H, "binbert: position embeddings must be [P, H]");
  check(W[3].ndim == 2 && W[3].dims[1] == H, "binbert: token type embeddings must be [T, H]");
  need(W[2], W[2].dims[0] * H, kFloat32, "position_embeddings");
  need(W[3], W[3].dims[0] * H, kFloat32, "token_type_embeddings");
  need(W[4], H, kFloat32, "embeddings.layer_norm.weight");
  need(W[5], H, kFloat32, "embeddings.layer_norm.bias");

  thread_local Workspace ws;
  float* X = grow(ws.x, M * H);
  const int64_t RB = std::min<int64_t>(M, kRowBlock);  // rows of a block's buffers (see the layer loop)
  float* X1 = grow(ws.x1, RB * H);
  const int64_t QW = qkv_mode == 0 ? words_for(3 * H) : 3 * HW;  // words per row of the Q, K, V bits
  uint64_t* QB = grow(ws.qb, M * QW);
  float* CTX = grow(ws.ctx, M * H);
  float* AO = grow(ws.ao, RB * H);  // out-projection, then FFN2 output of a block
  uint64_t* XB = grow(ws.xb, M * HW);
  // separate input quantizers of Q, K, V (qkv_mode 2): the bits of X for K and V
  uint64_t* XK = qkv_mode == 2 ? grow(ws.xk, M * HW) : nullptr;
  uint64_t* XV = qkv_mode == 2 ? grow(ws.xv, M * HW) : nullptr;
  uint64_t* CB = grow(ws.cb, M * HW);
  uint64_t* FB = grow(ws.fb, RB * IW);
  int32_t* POP = grow(ws.pop, RB);

  const bool profile = static_cast<int>(icfg.size()) > kProfile && icfg[kProfile] != 0;
  StageTimer tm(profile);
  const int64_t bad = bb_embed(isa, nt, ids, types, B, L, bits_of(W[0]), HW, W[1].as<float>(), vocab,
                               W[2].as<float>(), W[2].dims[0], W[3].as<float>(), W[3].dims[0], H, X);
  check(bad == 0, "binbert_bert_forward: ", bad, " token ids / token type ids out of range (vocab ", vocab,
        ") or sequence longer than max_position_embeddings (", W[2].dims[0], ")");
  // out = LayerNorm(a + r) over rows [r0, r0 + m) of X, giving the input X of layer li (no layer
  // when li == layers): the LayerNorm also writes the sign bits of that layer's first projection
  // (XB), and with separate quantizers per projection (qkv_mode 2) those of K and V (XK, XV).
  auto layernorm_x = [&](const float* a, const float* r, int64_t r0, int64_t m, int nidx, float eps, float* out,
                         int li) {
    uint64_t* bits[3] = {XB + r0 * HW, XK ? XK + r0 * HW : nullptr, XV ? XV + r0 * HW : nullptr};
    const float* betas[3] = {nullptr, nullptr, nullptr};
    const int nbits = li >= layers ? 0 : qkv_mode == 2 ? 3 : 1;
    const int base = kEmbTensors + li * kLayerTensors;
    for (int j = 0; j < nbits && has_beta; ++j) {
      const int first = base + (qkv_mode == 1 ? 10 : 5 * j);  // q_proj, k_proj, v_proj (or v_proj when only V is used)
      need(W[first + 3], H, kFloat32, "layer " + std::to_string(li) + " input_beta");
      betas[j] = W[first + 3].as<float>();
    }
    bb_add_layernorm_bits(isa, nt, a, H, r, H, m, H, W[nidx].as<float>(), W[nidx + 1].as<float>(), eps, out, H, nbits,
                          bits, HW, betas);
  };
  layernorm_x(X, nullptr, 0, M, 4, emb_eps, X, 0);
  // current token count, rows and key mask; the original position of every row (Restore)
  int64_t Lc = L, Mc = M;
  std::vector<float> mask_cur;
  const float* maskp = mask.as<float>();
  std::vector<int64_t> pos;
  const bool restore = budgets && icfg[kTask] != 0;  // span heads need a vector at every position
  float* R = nullptr;                                // [B, L, H]: rows as they were when dropped
  std::vector<double> sig;
  tm.lap(kEmbed);

  for (int li = 0; li < layers; ++li) {
    const int base = kEmbTensors + li * kLayerTensors;
    const std::string pre = "layer " + std::to_string(li) + " ";
    const int64_t keep = budgets && icfg[kNumCfg + li] > 0 ? std::min<int64_t>(icfg[kNumCfg + li], Lc) : Lc;
    const bool drop = keep < Lc;
    if (drop) sig.assign(static_cast<size_t>(B * heads * Lc), 0.0);
    // ---- Q, K, V projections (XB holds the bits of X for the first of them). Attention uses only
    // the sign bits sgn(q - bq), sgn(k - bk), sgn(v - bv): the GEMM epilogues write those bits
    // (QB [Mc, QW] words) instead of float Q, K, V.
    const int ab = base + kAttnOff;
    for (int j = 0; j < 4; ++j) need(W[ab + j], 1, kFloat32, pre + "attention scalars");
    const float* bq = nullptr;
    const float* bk = nullptr;
    const float* bv = nullptr;
    if (has_beta) {
      for (int j = 4; j < 7; ++j) need(W[ab + j], H, kFloat32, pre + "attention betas");
      bq = W[ab + 4].as<float>();
      bk = W[ab + 5].as<float>();
      bv = W[ab + 6].as<float>();
    }
    int64_t qbit = 0, kbit = H, vbit = 2 * H;  // bit offsets of Q, K, V in a row of QB
    if (qkv_mode == 0) {  // one GEMM over [q; k; v] rows: the three share the sign quantizer of X
      const Lin lq = get_lin(W, base, 3 * H, H, false, pre + "qkv");
      const float* qkv_beta = nullptr;
      if (has_beta) {
        qkv_beta = grow(ws.qkv_beta, 3 * H);
        std::copy(bq, bq + H, ws.qkv_beta.begin());
        std::copy(bk, bk + H, ws.qkv_beta.begin() + H);
        std::copy(bv, bv + H, ws.qkv_beta.begin() + 2 * H);
      }
      bb_gemm_q(isa, nt, XB, HW, Mc, lq.w, lq.n, HW, H, 0, nullptr, lq.alpha, lq.bias, QB, QW, nullptr, qkv_beta, 0, 0,
                1.f, gelu_thr);
    } else {  // Q, K, V in words [0, HW), [HW, 2 HW), [2 HW, 3 HW) of a row
      qbit = 0;
      kbit = 64 * HW;
      vbit = 128 * HW;
      const char* names[3] = {"q_proj", "k_proj", "v_proj"};
      const float* betas[3] = {bq, bk, bv};
      // the input bits: qkv_mode 1 (only V, all-ones attention) XB; qkv_mode 2 (BiT: separate input
      // quantizers) XB, XK, XV, all written by the LayerNorm that produced X
      const uint64_t* inputs[3] = {XB, qkv_mode == 2 ? XK : XB, qkv_mode == 2 ? XV : XB};
      for (int j = qkv_mode == 1 ? 2 : 0; j < 3; ++j) {
        const Lin lj = get_lin(W, base + 5 * j, H, H, has_beta, pre + names[j]);
        bb_gemm_q(isa, nt, inputs[j], HW, Mc, lj.w, lj.n, HW, H, 0, nullptr, lj.alpha, lj.bias, QB + j * HW, QW,
                  nullptr, betas[j], 0, 0, 1.f, gelu_thr);
      }
    }
    tm.lap(kGemmQkv);
    // ---- attention; with whole bytes per head it writes the out-projection's input bits directly
    const Lin lo = get_lin(W, base + 15, H, H, has_beta, pre + "out_proj");
    const bool direct_bits = (H / heads) % 8 == 0;
    bb_attention_bits(isa, nt, attn, QB, QW, qbit, kbit, vbit, B, Lc, H, heads, maskp, W[ab].as<float>()[0],
                      W[ab + 2].as<float>()[0], W[ab + 3].as<float>()[0], W[ab + 1].as<float>()[0], CTX, H,
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
        R = grow(ws.restore, M * H);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < Lc; ++j)
            std::copy(X + (b * Lc + j) * H, X + (b * Lc + j + 1) * H, R + (b * L + pos[b * Lc + j]) * H);
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
    // ---- output projection, residual + LayerNorm, FFN, residual + LayerNorm: row-local, so they run
    // block by block of at most kRowBlock rows (a batch's B * L rows go through each weight matrix
    // together, while a block's intermediates stay in cache)
    const int nb = base + kNormOff;
    for (int j = 0; j < 4; ++j) need(W[nb + j], H, kFloat32, pre + "LayerNorm parameters");
    const Lin l1 = get_lin(W, base + 20, I, H, has_beta, pre + "linear1");
    const Lin l2 = get_lin(W, base + 25, H, I, has_beta, pre + "linear2");
    const int64_t nblocks = (Mc + kRowBlock - 1) / kRowBlock;
    // balanced blocks of whole 4-row tiles (at most kRowBlock rows)
    const int64_t rb = nblocks <= 1 ? Mc : ((Mc + nblocks - 1) / nblocks + 3) / 4 * 4;
    for (int64_t r0 = 0; r0 < Mc; r0 += rb) {
      const int64_t mb = std::min<int64_t>(rb, Mc - r0);
      float* Xr = X + r0 * H;
      uint64_t* XBr = XB + r0 * HW;
      bb_gemm(isa, nt, CB + r0 * HW, HW, mb, lo.w, lo.n, HW, H, 0, nullptr, lo.alpha, lo.bias, AO, H);
      tm.lap(kGemmOut);
      // X1 = LayerNorm(X + AO), with the bits of FFN1's input
      bb_add_layernorm(isa, nt, Xr, H, AO, H, mb, H, W[nb].as<float>(), W[nb + 1].as<float>(), enc_eps, X1, H, XBr, HW,
                       l1.beta);
      tm.lap(kLayerNorm);
      // FFN: linear1 emits the bits of linear2's input quantizer (activation folded in) directly
      bb_gemm_q(isa, nt, XBr, HW, mb, l1.w, l1.n, HW, H, 0, nullptr, l1.alpha, l1.bias, FB, IW, q2 ? POP : nullptr,
                l2.beta, act, q2, l2.in_alpha, gelu_thr);
      tm.lap(kGemmFfn1);
      bb_gemm(isa, nt, FB, IW, mb, l2.w, l2.n, IW, I, q2, POP, l2.alpha, l2.bias, AO, H);
      tm.lap(kGemmFfn2);
      // X = LayerNorm(X1 + FFN), with the bits of the next layer's projections
      layernorm_x(X1, AO, r0, mb, nb + 2, enc_eps, Xr, li + 1);
      tm.lap(kLayerNorm);
    }
  }

  // ---- head
  const int tail = kEmbTensors + layers * kLayerTensors;
  const TensorView& hw_t = W[tail + 5];
  const TensorView& hb_t = W[tail + 6];
  check(hw_t.ndim == 2 && hw_t.dims[0] == H, "binbert: head weight must be [H, C]");
  const int64_t C = hw_t.dims[1];
  need(hw_t, H * C, kFloat32, "head weight");
  need(hb_t, C, kFloat32, "head bias");
  const float* hwp = hw_t.as<float>();
  const float* hbp = hb_t.as<float>();
  // Restore: the last layer's outputs back at their positions, the dropped rows from R
  const float* Xf = X;
  int64_t Lf = Lc;
  if (restore && Lc < L) {
    for (int64_t r = 0; r < Mc; ++r) std::copy(X + r * H, X + (r + 1) * H, R + ((r / Lc) * L + pos[r]) * H);
    Xf = R;
    Lf = L;
  }
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
  } else {  // token classification head (QA): every position
    feat = Xf;
    rows = B * Lf;
  }
  float* lg = grow(ws.logits, rows * C);
  for (int64_t r = 0; r < rows; ++r) {  // small FP head: double accumulation, serial
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      for (int64_t i = 0; i < H; ++i) s += static_cast<double>(feat[r * H + i]) * static_cast<double>(hwp[i * C + c]);
      lg[r * C + c] = static_cast<float>(s) + hbp[c];
    }
  }
  tm.lap(kHead);
  return ForwardOutputs{lg, rows, C, Xf, Lf, H};
}

}  // namespace

ForwardOutputs bert_forward(const int64_t* ids, const int64_t* types, int64_t B, int64_t L, const TensorView& mask,
                            const std::vector<TensorView>& W, const std::vector<int>& icfg,
                            const std::vector<float>& fcfg) {
  const bool profile = static_cast<int>(icfg.size()) > kProfile && icfg[kProfile] != 0;
  const auto t_start = std::chrono::steady_clock::now();
  // Sequences in groups of about kGroupRows rows: each weight matrix is used once per group (not per
  // sequence), while a group's hidden states stay in cache between layers (a whole batch's would
  // not: 12.5 MB at BERT-base, batch 32, length 128). Sequences never interact, so the outputs are
  // those of one call over the whole batch.
  const int64_t group = L > 0 ? std::max<int64_t>(1, kGroupRows / L) : std::max<int64_t>(B, 1);
  ForwardOutputs out{};
  if (B <= group) {
    out = forward_rows(ids, types, B, L, mask, W, icfg, fcfg);
  } else {
    need(mask, B * L, kFloat32, "attention mask");
    check(ids != nullptr && types != nullptr, "binbert_bert_forward: input_ids / token_type_ids must be [batch, seq_len] int64");
    thread_local std::vector<float> logits, hidden;  // the whole batch's outputs
    for (int64_t b0 = 0; b0 < B; b0 += group) {
      const int64_t g = std::min(group, B - b0);
      TensorView mv = mask;
      mv.data = mask.as<float>() + b0 * L;
      mv.numel = g * L;
      mv.dims[0] = g;
      const ForwardOutputs o = forward_rows(ids + b0 * L, types + b0 * L, g, L, mv, W, icfg, fcfg);
      const int64_t lrows = o.logit_rows / g, hsize = o.hidden_len * o.hidden_size;  // per sequence
      float* lg = grow(logits, B * lrows * o.num_classes);
      float* hd = grow(hidden, B * hsize);
      std::copy(o.logits, o.logits + g * lrows * o.num_classes, lg + b0 * lrows * o.num_classes);
      std::copy(o.hidden, o.hidden + g * hsize, hd + b0 * hsize);
      out = ForwardOutputs{lg, B * lrows, o.num_classes, hd, o.hidden_len, o.hidden_size};
    }
  }
  if (profile) {
    g_profile[kTotal] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    ++g_profile_calls;
  }
  return out;
}

void profile_read(double* out) {
  for (int i = 0; i < kStages; ++i) {
    out[i] = g_profile[i];
    g_profile[i] = 0.0;
  }
  out[kStages] = static_cast<double>(g_profile_calls);
  g_profile_calls = 0;
  bb_pool_stats(out + kStages + 1);
}

}  // namespace binbert
