// C ABI of the binary kernels (defined in binbert_kernels.cc; no Paddle dependency).
//
// Used by binbert_forward.cc (the whole-network orchestration), binbert_ops.cc (the Paddle custom
// operators) and paddle_binbert/runtime/csrc/binbert_capi.cc (the plain shared library of
// paddle_binbert.runtime). The conventions (bit order, weight panels, ISA codes) are documented at
// the top of binbert_kernels.cc.

#pragma once

#include <cstdint>

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
void bb_attention_bits(int isa, int nthreads, int variant, const uint64_t* bits, int64_t ldb, int64_t qbit,
                       int64_t kbit, int64_t vbit, int64_t b, int64_t l, int64_t h, int64_t heads, const float* mask,
                       float cqk, float alpha_p, float beta_p, float cpv, float* ctx, int64_t ldc, uint64_t* out_bits,
                       int64_t ldo, const float* obeta, double* sig);
void bb_add_layernorm(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                      int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                      uint64_t* bits, int64_t ldb, const float* qbeta);
void bb_add_layernorm_bits(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                           int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                           int nbits, uint64_t* const* bits, int64_t ldb, const float* const* qbeta);
int64_t bb_embed(int isa, int nthreads, const int64_t* ids, const int64_t* types, int64_t b, int64_t l,
                 const uint64_t* wbits, int64_t hw, const float* walpha, int64_t vocab, const float* pos,
                 int64_t npos, const float* temb, int64_t ntype, int64_t h, float* out);
double bb_ceiling(int nthreads, int64_t iters, int kind);
void bb_pool_stats(double* out);
double bb_gemm_bench(int isa, int nthreads, int64_t m, int64_t n, int64_t k, int reps, double* macs_per_s);
}
