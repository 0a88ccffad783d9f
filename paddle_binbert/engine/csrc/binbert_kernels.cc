// Binary kernels of the paddle_binbert inference engine.
//
// No Paddle dependency: a C ABI (`bb_*` functions) used by binbert_ops.cc, which wraps them as
// Paddle custom operators. Exact integer arithmetic for every binary product:
//
//   +-1 x +-1 over K real bits:   dot = K - 2 * popcount(x XOR w)
//   {0,1} x +-1:                  dot = 2 * popcount(a AND w+) - popcount(a)      (w+ = bits where w = +1)
//   binary linear:                y[t, j] = alpha_j * dot(x_t, w_j) + b_j
//
// Bit conventions: a row of K values is packed into ceil(K/64) little-endian uint64 words, value k
// in bit (k % 64) of word (k / 64), bit = 1 for +1 (or for the level 1 of a {0,1} activation);
// padding bits are 0 in both operands, so they never count.
//
// Weight panels: the engine stores a weight [N, KW] (row j = output channel j) as panels of 48
// rows, [P = ceil(N/48)][KW][48], so that one k step of a panel is 6 contiguous zmm registers of
// 8 rows each. The AVX-512 kernel broadcasts one activation word against those 6 registers for 4
// activation rows at a time (a 4x6 register tile: 24 accumulators + 6 weights + 1 broadcast).
//
// Instruction sets are chosen at run time (ISA 2 = AVX-512 VPOPCNTDQ, 1 = AVX2, 0 = portable C++);
// every function takes the ISA to use, `bb_best_isa()` says what the CPU supports. Threads: a small
// work-claiming pool (see ThreadPool), the caller passes the count. Nothing here is compiled with
// -ffast-math or FMA contraction: divisions, comparisons and
// the order of float additions are those of the formulas below, so the quantizer decisions agree
// with the simulated (fake-quant) Paddle model.

#include "binbert_kernels.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#define BB_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq,popcnt,fma,avx2,bmi2")))
#define BB_AVX2 __attribute__((target("avx2,fma,popcnt,bmi2")))

namespace {

constexpr int kPanel = 48;  // weight rows per panel (6 zmm x 8 rows)

inline int64_t words_for(int64_t k) { return (k + 63) / 64; }

inline int popcount64(uint64_t v) { return __builtin_popcountll(v); }

// ------------------------------------------------------------------------------------------
// Thread pool. Tasks are claimed in chunks from an atomic counter by the calling thread and by up
// to nthreads - 1 helpers; the caller waits only for chunks that were claimed, never for a helper
// that has not started. (An OpenMP region ends with a barrier that waits for every team thread: on
// a machine where another process occupies a core, that barrier costs a scheduler time slice per
// region, and inside Paddle's process libgomp next to Paddle's libiomp5 stalled ~12 ms per region.)
// Helpers spin briefly for the next job, then sleep on a condition variable.
// ------------------------------------------------------------------------------------------
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // never destroyed: helpers may outlive static destructors
    return *pool;
  }

  void run(int nthreads, int64_t ntasks, const std::function<void(int64_t, int64_t)>& fn) {
    if (ntasks <= 0) return;
    if (nthreads <= 1 || ntasks == 1) {
      fn(0, ntasks);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);  // one job at a time
    ensure_workers(nthreads - 1);
    fn_ = &fn;
    ntasks_ = ntasks;
    // guided chunks: half of what is left over the threads, at least ntasks / (32 nthreads), so
    // that the last chunks (those the caller may wait for) are small
    threads_ = nthreads;
    grain_ = std::max<int64_t>(1, ntasks / (static_cast<int64_t>(nthreads) * 32));
    chunks_.store(0);
    helpers_ = nthreads - 1;
    next_.store(0);
    remaining_.store(ntasks);
    retired_.store(false);
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      sleep_cv_.notify_all();
    }
    work();
    const auto t0 = std::chrono::steady_clock::now();
    wait_until([this] { return remaining_.load() == 0; });
    retired_.store(true);
    wait_until([this] { return inside_.load() == 0; });
    fn_ = nullptr;
    stats_[0] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_[1] += 1.0;
    stats_[2] += static_cast<double>(helper_chunks_.exchange(0));
    stats_[3] += static_cast<double>(chunks_.load());
  }

  // [seconds the caller waited for helpers, jobs, chunks run by helpers, chunks], then reset
  void read_stats(double* out) {
    std::lock_guard<std::mutex> serial(run_mutex_);
    for (int i = 0; i < 4; ++i) {
      out[i] = stats_[i];
      stats_[i] = 0.0;
    }
  }

 private:
  ThreadPool() = default;

  // Spin briefly, then yield the CPU: a helper that holds a chunk may be waiting for this very core.
  template <typename Pred>
  static void wait_until(Pred done) {
    for (int spin = 0; !done(); ++spin) {
      if (spin < 2000)
        _mm_pause();
      else
        std::this_thread::yield();
    }
  }

  int64_t work() {  // returns the number of chunks this thread ran
    int64_t chunks = 0;
    for (;;) {
      int64_t begin = next_.load(), size = 0;
      do {
        if (begin >= ntasks_) return chunks;
        size = std::max(grain_, (ntasks_ - begin) / (2 * threads_));
      } while (!next_.compare_exchange_weak(begin, begin + size));
      const int64_t end = std::min(ntasks_, begin + size);
      chunks_.fetch_add(1);
      (*fn_)(begin, end);
      remaining_.fetch_sub(end - begin);
      ++chunks;
    }
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { loop(index); });
      workers_.back().detach();
    }
  }

  void loop(int index) {
    uint64_t seen = generation_.load();
    for (;;) {
      // wait for a new job: poll with sched_yield (so that a thread sharing this core, e.g. the
      // caller on a machine whose other cores are busy, keeps running) for ~0.2 ms, then sleep
      uint64_t gen = generation_.load();
      const auto t_wait = std::chrono::steady_clock::now();
      for (int spin = 0; gen == seen; ++spin) {
        if (spin < 64) {
          _mm_pause();
        } else {
          std::this_thread::yield();
          if ((spin & 15) == 0 && std::chrono::steady_clock::now() - t_wait > std::chrono::microseconds(200)) break;
        }
        gen = generation_.load();
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lk(sleep_mutex_);
        sleepers_.fetch_add(1);
        sleep_cv_.wait(lk, [&] { return generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        gen = generation_.load();
      }
      seen = gen;
      if (index >= helpers_.load()) continue;
      inside_.fetch_add(1);
      if (!retired_.load()) helper_chunks_.fetch_add(work());
      inside_.fetch_sub(1);
    }
  }

  std::mutex run_mutex_, sleep_mutex_;
  std::condition_variable sleep_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t ntasks_ = 0, grain_ = 1, threads_ = 1;
  std::atomic<int> helpers_{0}, inside_{0}, sleepers_{0};
  std::atomic<int64_t> next_{0}, remaining_{0}, chunks_{0};
  std::atomic<bool> retired_{true};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> helper_chunks_{0};
  double stats_[4] = {0, 0, 0, 0};
};

inline void parallel_for(int nthreads, int64_t ntasks, const std::function<void(int64_t, int64_t)>& fn) {
  ThreadPool::instance().run(nthreads, ntasks, fn);
}

int affinity_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// ------------------------------------------------------------------------------------------
// Activation quantizers (scalar reference; the AVX-512 packer computes the same expressions)
// ------------------------------------------------------------------------------------------
// act: 0 identity, 1 relu (x > 0 ? x : 0), 2 gelu (x * 0.5 * (1 + erf(x / sqrt 2)))
// quant: 0 signed  -> bit = (v - beta) >= 0                       (sgn with ties to +1)
//        1 unsigned-> u = (v - beta) / alpha; bit = clip(u, 0, 1) + 0.5 >= 1   (floor(c + 0.5) = 1)
// gelu + signed + no beta uses the exact rule sgn(gelu(x)) = +1 iff x >= 0 or x <= thr, where thr
// is the largest input for which Paddle's float32 gelu returns -0.0 (probed by the caller).
inline float act_scalar(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) return v * 0.5f * (1.0f + std::erf(v * static_cast<float>(M_SQRT1_2)));
  return v;
}

inline bool qbit_scalar(float v, float b, int act, int quant, float qalpha, float thr, bool gelu_sign) {
  if (gelu_sign) return v >= 0.f || v <= thr;
  v = act_scalar(v, act);
  const float s = v - b;
  if (quant == 0) return s >= 0.f;
  const float u = s / qalpha;
  const float c = std::min(std::max(u, 0.f), 1.f);
  return c + 0.5f >= 1.0f;
}

// ------------------------------------------------------------------------------------------
// Packing rows of floats into bits
// ------------------------------------------------------------------------------------------
struct PackArgs {
  const float* x;
  int64_t ldx, m, k;
  const float* beta;  // [k] or null
  int act, quant;
  float qalpha, thr;
  uint64_t* out;
  int64_t ldo;
  int32_t* pop;  // per-row popcount or null
};

void pack_range_scalar(const PackArgs& a, int64_t r0, int64_t r1) {
  const int64_t kw = words_for(a.k);
  const bool gelu_sign = (a.act == 2 && a.quant == 0 && a.beta == nullptr);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = a.x + r * a.ldx;
    uint64_t* o = a.out + r * a.ldo;
    int32_t cnt = 0;
    for (int64_t w = 0; w < kw; ++w) {
      uint64_t bits = 0;
      const int64_t base = w * 64;
      const int64_t end = std::min<int64_t>(64, a.k - base);
      for (int64_t i = 0; i < end; ++i) {
        const float b = a.beta ? a.beta[base + i] : 0.f;
        if (qbit_scalar(xr[base + i], b, a.act, a.quant, a.qalpha, a.thr, gelu_sign)) bits |= (uint64_t{1} << i);
      }
      o[w] = bits;
      cnt += popcount64(bits);
    }
    if (a.pop) a.pop[r] = cnt;
  }
}

BB_AVX512 inline __mmask16 qmask16_avx512(__m512 v, __m512 b, int act, int quant, __m512 qalpha, __m512 thr,
                                          bool gelu_sign) {
  const __m512 zero = _mm512_setzero_ps();
  if (gelu_sign) {
    return _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ) | _mm512_cmp_ps_mask(v, thr, _CMP_LE_OQ);
  }
  if (act == 1) v = _mm512_max_ps(v, zero);  // MAXPS returns the 2nd operand (+0) for -0 and NaN: relu
  const __m512 s = _mm512_sub_ps(v, b);
  if (quant == 0) return _mm512_cmp_ps_mask(s, zero, _CMP_GE_OQ);
  const __m512 u = _mm512_div_ps(s, qalpha);
  const __m512 c = _mm512_min_ps(_mm512_max_ps(u, zero), _mm512_set1_ps(1.0f));
  return _mm512_cmp_ps_mask(_mm512_add_ps(c, _mm512_set1_ps(0.5f)), _mm512_set1_ps(1.0f), _CMP_GE_OQ);
}

BB_AVX512 void pack_range_avx512(const PackArgs& a, int64_t r0, int64_t r1) {
  if (a.act == 2 && !(a.quant == 0 && a.beta == nullptr)) {  // the gelu value itself is needed: scalar erf
    pack_range_scalar(a, r0, r1);
    return;
  }
  const int64_t kw = words_for(a.k), k = a.k;
  const bool gelu_sign = (a.act == 2);
  const __m512 va = _mm512_set1_ps(a.qalpha), vt = _mm512_set1_ps(a.thr);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = a.x + r * a.ldx;
    uint64_t* o = a.out + r * a.ldo;
    int32_t cnt = 0;
    for (int64_t w = 0; w < kw; ++w) {
      uint64_t bits = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t base = w * 64 + q * 16;
        if (base >= k) break;
        const int64_t n = std::min<int64_t>(16, k - base);
        const __mmask16 lm = n == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(lm, xr + base);
        const __m512 b = a.beta ? _mm512_maskz_loadu_ps(lm, a.beta + base) : _mm512_setzero_ps();
        const __mmask16 mk = qmask16_avx512(v, b, a.act, a.quant, va, vt, gelu_sign) & lm;
        bits |= static_cast<uint64_t>(mk) << (16 * q);
      }
      o[w] = bits;
      cnt += static_cast<int32_t>(_mm_popcnt_u64(bits));
    }
    if (a.pop) a.pop[r] = cnt;
  }
}

// ------------------------------------------------------------------------------------------
// GEMM: Y[m, n] = alpha[n] * dot(X[m], W[n]) + bias[n]
// ------------------------------------------------------------------------------------------
struct GemmArgs {
  const uint64_t* x;
  int64_t ldx;
  int64_t m;
  const uint64_t* w;  // panels [P][kw][48]
  int64_t n;
  int64_t kw;
  int64_t k;
  int mode;  // 0: +-1 x +-1 (XOR), 1: {0,1} x +-1 (AND)
  const int32_t* xpop;
  const float* alpha;
  const float* bias;
  float* y;
  int64_t ldy;
  // optional quantized output (AVX-512 path): instead of y, the bits of the next layer's input
  // quantizer applied to y (see qbit_scalar), one byte per 8 output channels
  uint64_t* ybits = nullptr;
  int64_t ldyb = 0;
  const float* qbeta = nullptr;
  int act = 0, quant = 0;
  float qalpha = 1.f, thr = 0.f;
  // task order: false = panel-major (a chunk of tasks reuses a weight panel from L1), true =
  // row-major (a chunk covers whole rows: bit outputs, 8 channels per byte, would otherwise have
  // threads on different panels writing bytes of the same cache lines)
  bool row_major = false;
};

inline float finish(const GemmArgs& a, int64_t row, int64_t col, int64_t pc) {
  const int64_t dot = a.mode == 0 ? a.k - 2 * pc : 2 * pc - a.xpop[row];
  return a.alpha[col] * static_cast<float>(dot) + a.bias[col];
}

// Tasks of every GEMM path: task t = (panel t / mtiles, row tile t % mtiles), panel-major so that a
// chunk of consecutive tasks reuses one weight panel from L1.
void gemm_portable_range(const GemmArgs& a, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const uint64_t* wp = a.w + p * a.kw * kPanel;
    const int64_t rows = std::min<int64_t>(kPanel, a.n - p * kPanel);
    for (int64_t r = 0; r < a.m; ++r) {
      const uint64_t* xr = a.x + r * a.ldx;
      for (int64_t j = 0; j < rows; ++j) {
        int64_t pc = 0;
        for (int64_t kk = 0; kk < a.kw; ++kk) {
          const uint64_t wv = wp[kk * kPanel + j];
          pc += popcount64(a.mode == 0 ? (xr[kk] ^ wv) : (xr[kk] & wv));
        }
        a.y[r * a.ldy + p * kPanel + j] = finish(a, r, p * kPanel + j, pc);
      }
    }
  }
}

// ---- AVX2: nibble-LUT popcount (VPSHUFB), byte counters flushed with VPSADBW every 31 words.
BB_AVX2 inline __m256i popcnt8_avx2(__m256i v, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(v, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

template <int MR, int MODE>
BB_AVX2 void panel_avx2(const GemmArgs& a, int64_t p, int64_t r0) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2,
                                       2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const uint64_t* wp = a.w + p * a.kw * kPanel;
  const int64_t n0 = p * kPanel;
  for (int s = 0; s < 4; ++s) {  // 4 sub-tiles of 12 rows (3 ymm)
    if (n0 + 12 * s >= a.n) break;
    __m256i acc64[MR][3];
    for (int t = 0; t < MR; ++t)
      for (int g = 0; g < 3; ++g) acc64[t][g] = zero;
    int64_t kk = 0;
    while (kk < a.kw) {
      const int64_t kend = std::min<int64_t>(a.kw, kk + 31);
      __m256i acc8[MR][3];
      for (int t = 0; t < MR; ++t)
        for (int g = 0; g < 3; ++g) acc8[t][g] = zero;
      for (; kk < kend; ++kk) {
        const uint64_t* wr = wp + kk * kPanel + 12 * s;
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + 4));
        const __m256i w2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + 8));
        for (int t = 0; t < MR; ++t) {
          const __m256i xb = _mm256_set1_epi64x(static_cast<long long>(a.x[(r0 + t) * a.ldx + kk]));
          if (MODE == 0) {
            acc8[t][0] = _mm256_add_epi8(acc8[t][0], popcnt8_avx2(_mm256_xor_si256(xb, w0), lut, low));
            acc8[t][1] = _mm256_add_epi8(acc8[t][1], popcnt8_avx2(_mm256_xor_si256(xb, w1), lut, low));
            acc8[t][2] = _mm256_add_epi8(acc8[t][2], popcnt8_avx2(_mm256_xor_si256(xb, w2), lut, low));
          } else {
            acc8[t][0] = _mm256_add_epi8(acc8[t][0], popcnt8_avx2(_mm256_and_si256(xb, w0), lut, low));
            acc8[t][1] = _mm256_add_epi8(acc8[t][1], popcnt8_avx2(_mm256_and_si256(xb, w1), lut, low));
            acc8[t][2] = _mm256_add_epi8(acc8[t][2], popcnt8_avx2(_mm256_and_si256(xb, w2), lut, low));
          }
        }
      }
      for (int t = 0; t < MR; ++t)
        for (int g = 0; g < 3; ++g) acc64[t][g] = _mm256_add_epi64(acc64[t][g], _mm256_sad_epu8(acc8[t][g], zero));
    }
    for (int t = 0; t < MR; ++t) {
      for (int g = 0; g < 3; ++g) {
        alignas(32) int64_t pcs[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(pcs), acc64[t][g]);
        for (int l = 0; l < 4; ++l) {
          const int64_t col = n0 + 12 * s + 4 * g + l;
          if (col < a.n) a.y[(r0 + t) * a.ldy + col] = finish(a, r0 + t, col, pcs[l]);
        }
      }
    }
  }
}

template <int MODE>
BB_AVX2 void gemm_avx2_range(const GemmArgs& a, int64_t t0, int64_t t1) {
  const int64_t mtiles = (a.m + 1) / 2;
  for (int64_t task = t0; task < t1; ++task) {
    const int64_t p = task / mtiles, r0 = (task % mtiles) * 2;
    if (a.m - r0 >= 2)
      panel_avx2<2, MODE>(a, p, r0);
    else
      panel_avx2<1, MODE>(a, p, r0);
  }
}

// ---- AVX-512 VPOPCNTDQ: 4x6 register tile.
// Epilogues of the AVX-512 tile: kFloatOut y = alpha * dot + bias; kSignBits the bits sgn(y - qbeta)
// (activation identity, signed quantizer: the QKV projections); kQuantBits any quantizer of qbit_scalar.
enum Epilogue { kFloatOut = 0, kSignBits = 1, kQuantBits = 2 };

template <int MR, int MODE, int EPI>
BB_AVX512 inline void tile_avx512(const GemmArgs& a, int64_t p, int64_t r0) {
  __m512i acc[MR][6];
#pragma GCC unroll 4
  for (int t = 0; t < MR; ++t)
#pragma GCC unroll 6
    for (int g = 0; g < 6; ++g) acc[t][g] = _mm512_setzero_si512();
  const uint64_t* wp = a.w + p * a.kw * kPanel;
  const uint64_t* xr = a.x + r0 * a.ldx;
  const int64_t ldx = a.ldx;
  for (int64_t kk = 0; kk < a.kw; ++kk) {
    const uint64_t* wr = wp + kk * kPanel;
    const __m512i w0 = _mm512_loadu_si512(wr);
    const __m512i w1 = _mm512_loadu_si512(wr + 8);
    const __m512i w2 = _mm512_loadu_si512(wr + 16);
    const __m512i w3 = _mm512_loadu_si512(wr + 24);
    const __m512i w4 = _mm512_loadu_si512(wr + 32);
    const __m512i w5 = _mm512_loadu_si512(wr + 40);
#pragma GCC unroll 4
    for (int t = 0; t < MR; ++t) {
      const __m512i xb = _mm512_set1_epi64(static_cast<long long>(xr[t * ldx + kk]));
      if (MODE == 0) {
        acc[t][0] = _mm512_add_epi64(acc[t][0], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w0)));
        acc[t][1] = _mm512_add_epi64(acc[t][1], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w1)));
        acc[t][2] = _mm512_add_epi64(acc[t][2], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w2)));
        acc[t][3] = _mm512_add_epi64(acc[t][3], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w3)));
        acc[t][4] = _mm512_add_epi64(acc[t][4], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w4)));
        acc[t][5] = _mm512_add_epi64(acc[t][5], _mm512_popcnt_epi64(_mm512_xor_si512(xb, w5)));
      } else {
        acc[t][0] = _mm512_add_epi64(acc[t][0], _mm512_popcnt_epi64(_mm512_and_si512(xb, w0)));
        acc[t][1] = _mm512_add_epi64(acc[t][1], _mm512_popcnt_epi64(_mm512_and_si512(xb, w1)));
        acc[t][2] = _mm512_add_epi64(acc[t][2], _mm512_popcnt_epi64(_mm512_and_si512(xb, w2)));
        acc[t][3] = _mm512_add_epi64(acc[t][3], _mm512_popcnt_epi64(_mm512_and_si512(xb, w3)));
        acc[t][4] = _mm512_add_epi64(acc[t][4], _mm512_popcnt_epi64(_mm512_and_si512(xb, w4)));
        acc[t][5] = _mm512_add_epi64(acc[t][5], _mm512_popcnt_epi64(_mm512_and_si512(xb, w5)));
      }
    }
  }
  // epilogue: dot -> alpha * dot + bias, 16 output channels per step: the accumulators of channel
  // groups g and g + 1 are merged into one vector of int32 lanes (the low halves of their int64
  // lanes; a popcount sum is at most K < 2^31), so that the conversion, scaling and store run once
  // per 16 channels instead of once per 8
  const int64_t n0 = p * kPanel;
  const __m512i lo32 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#pragma GCC unroll 3
  for (int gp = 0; gp < 3; ++gp) {
    const int64_t c0 = n0 + 16 * gp;
    if (c0 >= a.n) break;
    const int64_t cnt = std::min<int64_t>(16, a.n - c0);
    const __mmask16 lm = cnt == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cnt) - 1u);
    const __m512 al = _mm512_maskz_loadu_ps(lm, a.alpha + c0);
    const __m512 bi = _mm512_maskz_loadu_ps(lm, a.bias + c0);
    const __m512 qb = a.qbeta ? _mm512_maskz_loadu_ps(lm, a.qbeta + c0) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int t = 0; t < MR; ++t) {
      const __m512i pc = _mm512_permutex2var_epi32(acc[t][2 * gp], lo32, acc[t][2 * gp + 1]);
      const __m512i pc2 = _mm512_slli_epi32(pc, 1);
      const __m512i dot = MODE == 0 ? _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(a.k)), pc2)
                                    : _mm512_sub_epi32(pc2, _mm512_set1_epi32(a.xpop[r0 + t]));
      const __m512 yv = _mm512_add_ps(_mm512_mul_ps(al, _mm512_cvtepi32_ps(dot)), bi);
      if (EPI == kFloatOut) {
        _mm512_mask_storeu_ps(a.y + (r0 + t) * a.ldy + c0, lm, yv);
        continue;
      }
      __mmask16 bits;
      if (EPI == kSignBits) {
        bits = _mm512_cmp_ps_mask(_mm512_sub_ps(yv, qb), _mm512_setzero_ps(), _CMP_GE_OQ) & lm;
      } else {
        const bool gelu_sign = a.act == 2 && a.quant == 0 && a.qbeta == nullptr;
        bits = qmask16_avx512(yv, qb, a.act, a.quant, _mm512_set1_ps(a.qalpha), _mm512_set1_ps(a.thr), gelu_sign) & lm;
      }
      // one byte per 8 channels; the second byte only when it holds channels of this GEMM (it may
      // otherwise be the first byte of another output sharing the row, e.g. K after Q)
      uint8_t* dst = reinterpret_cast<uint8_t*>(a.ybits + (r0 + t) * a.ldyb) + c0 / 8;
      dst[0] = static_cast<uint8_t>(bits);
      if (cnt > 8) dst[1] = static_cast<uint8_t>(bits >> 8);
    }
  }
}

template <int MODE, int EPI>
BB_AVX512 void gemm_avx512_tasks(const GemmArgs& a, int64_t t0, int64_t t1) {
  const int64_t mtiles = (a.m + 3) / 4, panels = (a.n + kPanel - 1) / kPanel;
  for (int64_t task = t0; task < t1; ++task) {
    const int64_t p = a.row_major ? task % panels : task / mtiles;
    const int64_t r0 = (a.row_major ? task / panels : task % mtiles) * 4;
    switch (std::min<int64_t>(4, a.m - r0)) {
      case 4: tile_avx512<4, MODE, EPI>(a, p, r0); break;
      case 3: tile_avx512<3, MODE, EPI>(a, p, r0); break;
      case 2: tile_avx512<2, MODE, EPI>(a, p, r0); break;
      default: tile_avx512<1, MODE, EPI>(a, p, r0); break;
    }
  }
}

template <int MODE>
BB_AVX512 void gemm_avx512_range(const GemmArgs& a, int64_t t0, int64_t t1) {
  if (!a.ybits)
    gemm_avx512_tasks<MODE, kFloatOut>(a, t0, t1);
  else if (a.act == 0 && a.quant == 0)
    gemm_avx512_tasks<MODE, kSignBits>(a, t0, t1);
  else
    gemm_avx512_tasks<MODE, kQuantBits>(a, t0, t1);
}

// ------------------------------------------------------------------------------------------
// Attention
// ------------------------------------------------------------------------------------------
struct AttnArgs {
  // 0: BiBERT bool, 1: softmax + elastic {0, alpha} probabilities (BiT), 2: all-ones probabilities (BWN
  // baseline). In every variant a masked key (mask <= -1) gets attention 0 (specs/attention.md, "Padding").
  int variant;
  const float* qkv;
  int64_t ld;
  int64_t qoff, koff, voff;
  int64_t b, l, h, heads;
  const float* mask;  // [B, L] additive mask of the keys
  const float* bq;    // per-channel betas of the Q/K/V sign quantizers ([H]) or null
  const float* bk;
  const float* bv;
  float cqk;      // score scale: S = fl(dot * cqk) + mask
  float alpha_p;  // prob quantizer (variant 1): u = (P - beta_p) / alpha_p
  float beta_p;
  float cpv;  // context scale: ctx = fl(dot * cpv)
  float* ctx;  // float context [B*L, ldc] (when out_bits is null)
  int64_t ldc;
  uint64_t* out_bits;  // or: bits of the out-projection input, sgn(ctx - obeta) ([B*L, ldo] words; d % 8 == 0)
  int64_t ldo;
  const float* obeta;  // [H] or null
  const int32_t* lim;  // variant 0: per (batch, key) largest popcount(q XOR k) with S > 0 ([B, lp]; -1: never)
  // or null; else per (batch, head, key) the attention the key receives, summed over the real
  // (unmasked) queries ([B, heads, L], zeroed by the caller): variant 0 counts the queries with
  // A = 1, variant 1 adds the softmax probabilities before their quantizer (Drop-and-Restore's
  // token significance, Kim & Cho 2021)
  double* sig;
  // or, instead of qkv: the sign bits of Q, K, V already quantized (sgn(q - bq) ...) by the QKV
  // GEMM's epilogue ([B*L, ldb] words; channel c of Q at bit qbit + c of its row, likewise K, V)
  const uint64_t* bits = nullptr;
  int64_t ldb = 0, qbit = 0, kbit = 0, vbit = 0;
  // with several threads: out_bits go first to this head-major scratch ([heads][B*L][d/8] bytes), so
  // that threads working on different heads of the same rows never write to one cache line
  uint8_t* head_bytes = nullptr;
};

// Where the output byte of channels [c0, c0 + 8) of head hh, query row `row`, goes.
__attribute__((always_inline)) inline uint8_t* out_byte(const AttnArgs& a, int64_t row, int64_t hh, int64_t c0) {
  const int64_t d = a.h / a.heads;
  if (a.head_bytes) return a.head_bytes + (hh * a.b * a.l + row) * (d / 8) + c0 / 8;
  return reinterpret_cast<uint8_t*>(a.out_bits + row * a.ldo) + (hh * d + c0) / 8;
}

// A key is real (not padding) when its additive mask is above -1 (PaddleNLP pads with -1e4); a query
// row is real when its own key mask lets it be attended. The model's rule (attention.py).
inline bool real_key(const float* mask, int64_t j) { return mask[j] > -1.f; }
inline bool real_query(const float* mask, int64_t i) { return real_key(mask, i); }

// Per-(batch, head) workspace.
struct HeadWork {
  std::vector<uint64_t> qh;    // [L4][dw]      query bits (rows padded to a multiple of 4)
  std::vector<uint64_t> kt;    // [dw][lp]      key bits, word-major (keys contiguous; lp = L rounded up to 8)
  std::vector<uint64_t> vrow;  // [lw*64][dw]   value bits per key
  std::vector<uint64_t> vt;    // [lw][dp]      value bits per channel over keys (dp = d rounded up to 8)
  std::vector<float> srow;     // [l16 + 16]
  std::vector<uint64_t> arow;  // [4][lw]       attention bits of up to 4 queries
  std::vector<uint64_t> kreal;  // [lw]          bits of the real (unmasked) keys
};

inline bool prob_bit(float p, float alpha_p, float beta_p) {
  const float u = (p - beta_p) / alpha_p;
  const float c = std::min(std::max(u, 0.f), 1.f);
  return c + 0.5f >= 1.0f;
}

// 64 x 64 bit-matrix transpose, LSB-first: afterwards bit r of a[c] = bit c of the original a[r]
// (recursive exchange of off-diagonal blocks, 6 rounds; Warren, "Hacker's Delight", 7-3).
inline void transpose64(uint64_t* a) {
  uint64_t m = 0x00000000FFFFFFFFull;
  for (int j = 32; j != 0; j >>= 1, m ^= (m << j)) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

void prepare_work(HeadWork& w, int64_t L, int64_t d) {
  const int64_t dw = words_for(d), lw = words_for(L);
  w.qh.assign(round_up(L, 4) * dw, 0);
  w.kt.assign(dw * round_up(L, 8), 0);
  w.vrow.assign(lw * 64 * dw, 0);
  w.vt.assign(lw * round_up(d, 8), 0);
  w.srow.resize(round_up(L, 16) + 16);
  w.arow.assign(4 * lw, 0);
  w.kreal.assign(lw, 0);
}

// `n` (<= 64) bits of a packed row starting at bit `start` (LSB first; the bits above n are 0).
inline uint64_t bits_at(const uint64_t* row, int64_t start, int64_t n) {
  const int64_t wi = start / 64, sh = start % 64;
  uint64_t v = row[wi] >> sh;
  if (sh != 0 && sh + n > 64) v |= row[wi + 1] << (64 - sh);
  return n < 64 ? v & ((uint64_t{1} << n) - 1) : v;
}

// The head's Q, K, V bits gathered from the QKV GEMM's quantized output (a.bits): the same words
// the float path packs from sgn(q - bq), sgn(k - bk), sgn(v - bv).
void gather_head_bits(const AttnArgs& a, int64_t bb, int64_t hh, HeadWork& w) {
  const int64_t L = a.l, d = a.h / a.heads, dw = words_for(d), lp = round_up(L, 8), c0 = hh * d;
  for (int64_t j = 0; j < L; ++j) {
    const uint64_t* row = a.bits + (bb * L + j) * a.ldb;
    for (int64_t ww = 0; ww < dw; ++ww) {
      const int64_t c = c0 + ww * 64, n = std::min<int64_t>(64, d - ww * 64);
      if (a.variant != 2) {
        w.qh[j * dw + ww] = bits_at(row, a.qbit + c, n);
        w.kt[ww * lp + j] = bits_at(row, a.kbit + c, n);
      }
      w.vrow[j * dw + ww] = bits_at(row, a.vbit + c, n);
    }
  }
}

// Bits of the real keys of one batch row; returns their count.
inline int64_t real_key_bits(HeadWork& w, const float* mask, int64_t L) {
  int64_t n = 0;
  for (int64_t j = 0; j < L; ++j) {
    if (real_key(mask, j)) {
      w.kreal[j / 64] |= uint64_t{1} << (j % 64);
      ++n;
    }
  }
  return n;
}

// V bits per key -> per channel (over keys), through 64 x 64 transposes.
void transpose_values(HeadWork& w, int64_t d, int64_t lw, int64_t dp) {
  const int64_t dw = words_for(d);
  uint64_t blk[64];
  for (int64_t kb = 0; kb < lw; ++kb) {
    for (int64_t ww = 0; ww < dw; ++ww) {
      for (int r = 0; r < 64; ++r) blk[r] = w.vrow[(kb * 64 + r) * dw + ww];
      transpose64(blk);
      const int64_t cend = std::min<int64_t>(64, d - ww * 64);
      for (int64_t c = 0; c < cend; ++c) w.vt[kb * dp + ww * 64 + c] = blk[c];
    }
  }
}

// Output of 8 channels [c0, c0 + 8) of query row `row` given their dots.
inline void store_ctx8_scalar(const AttnArgs& a, int64_t row, int64_t hh, int64_t d, int64_t c0, const int64_t* dots) {
  const int64_t cend = std::min<int64_t>(8, d - c0);
  if (a.out_bits) {
    uint8_t byte = 0;
    for (int64_t c = 0; c < cend; ++c) {
      const float v = static_cast<float>(dots[c]) * a.cpv;
      const float bo = a.obeta ? a.obeta[hh * d + c0 + c] : 0.f;
      if (v - bo >= 0.f) byte |= static_cast<uint8_t>(1u << c);
    }
    *out_byte(a, row, hh, c0) = byte;
  } else {
    for (int64_t c = 0; c < cend; ++c) a.ctx[row * a.ldc + hh * d + c0 + c] = static_cast<float>(dots[c]) * a.cpv;
  }
}

void attention_head_scalar(const AttnArgs& a, int64_t bb, int64_t hh, HeadWork& w) {
  const int64_t L = a.l, d = a.h / a.heads, dw = words_for(d), lw = words_for(L);
  const int64_t lp = round_up(L, 8), dp = round_up(d, 8);
  prepare_work(w, L, d);
  for (int64_t j = 0; j < (a.bits ? 0 : L); ++j) {
    const float* row = a.qkv + (bb * L + j) * a.ld;
    for (int64_t c = 0; c < d; ++c) {
      const int64_t ch = hh * d + c;
      if (a.variant != 2) {
        const float q = row[a.qoff + ch] - (a.bq ? a.bq[ch] : 0.f);
        const float k = row[a.koff + ch] - (a.bk ? a.bk[ch] : 0.f);
        if (q >= 0.f) w.qh[j * dw + c / 64] |= uint64_t{1} << (c % 64);
        if (k >= 0.f) w.kt[(c / 64) * lp + j] |= uint64_t{1} << (c % 64);
      }
      const float v = row[a.voff + ch] - (a.bv ? a.bv[ch] : 0.f);
      if (v >= 0.f) w.vrow[j * dw + c / 64] |= uint64_t{1} << (c % 64);
    }
  }
  if (a.bits) gather_head_bits(a, bb, hh, w);
  transpose_values(w, d, lw, dp);
  const float* mask = a.mask + bb * L;
  const int64_t nreal = real_key_bits(w, mask, L);
  int64_t dots[8];
  if (a.variant == 2) {  // probabilities +1 at the real keys, 0 at masked ones:
    // ctx[i, c] = sum_{j real} sgn(v_jc) = 2 popcount(R AND V+_c) - |R|, the same for every query
    std::vector<int64_t> col(dp, 0);
    for (int64_t c = 0; c < d; ++c) {
      int64_t pc = 0;
      for (int64_t ww = 0; ww < lw; ++ww) pc += popcount64(w.vt[ww * dp + c] & w.kreal[ww]);
      col[c] = 2 * pc - nreal;
    }
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c0 = 0; c0 < d; c0 += 8) store_ctx8_scalar(a, bb * L + i, hh, d, c0, col.data() + c0);
    return;
  }
  uint64_t* arow = w.arow.data();
  double* sig = a.sig ? a.sig + (bb * a.heads + hh) * L : nullptr;
  for (int64_t i = 0; i < L; ++i) {
    std::fill(arow, arow + lw, 0);
    const bool count = sig && real_query(mask, i);
    if (a.variant == 0) {
      for (int64_t j = 0; j < L; ++j) {
        int64_t pc = 0;
        for (int64_t ww = 0; ww < dw; ++ww) pc += popcount64(w.qh[i * dw + ww] ^ w.kt[ww * lp + j]);
        if (pc <= a.lim[bb * lp + j]) {
          arow[j / 64] |= uint64_t{1} << (j % 64);
          if (count) sig[j] += 1.0;
        }
      }
    } else {
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < L; ++j) {
        int64_t pc = 0;
        for (int64_t ww = 0; ww < dw; ++ww) pc += popcount64(w.qh[i * dw + ww] ^ w.kt[ww * lp + j]);
        const float s = static_cast<float>(d - 2 * pc) * a.cqk + mask[j];
        w.srow[j] = s;
        mx = std::max(mx, s);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < L; ++j) {
        w.srow[j] = std::exp(w.srow[j] - mx);
        sum += w.srow[j];
      }
      for (int64_t j = 0; j < L; ++j) {
        const float p = w.srow[j] / sum;
        if (real_key(mask, j) && prob_bit(p, a.alpha_p, a.beta_p)) arow[j / 64] |= uint64_t{1} << (j % 64);
        if (count) sig[j] += static_cast<double>(p);
      }
    }
    int64_t pa = 0;
    for (int64_t ww = 0; ww < lw; ++ww) pa += popcount64(arow[ww]);
    for (int64_t c0 = 0; c0 < d; c0 += 8) {
      for (int64_t c = 0; c < 8; ++c) {
        int64_t pc = 0;
        if (c0 + c < d)
          for (int64_t ww = 0; ww < lw; ++ww) pc += popcount64(arow[ww] & w.vt[ww * dp + c0 + c]);
        dots[c] = 2 * pc - pa;
      }
      store_ctx8_scalar(a, bb * L + i, hh, d, c0, dots);
    }
  }
}

// exp(x) for float32 lanes: 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, Taylor to degree 7
// (truncation error < 1e-8 relative), Cody-Waite split of ln 2; VSCALEFPS gives correct underflow.
BB_AVX512 inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-110.f));
  x = _mm512_min_ps(x, _mm512_set1_ps(88.72283935546875f));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

BB_AVX512 inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// 8 channels [c0, c0 + 8) of a query row from their dots (int64 lanes).
BB_AVX512 inline void store_ctx8_avx512(const AttnArgs& a, int64_t row, int64_t hh, int64_t d, int64_t c0,
                                        __m512i dot) {
  const int64_t n = std::min<int64_t>(8, d - c0);
  const __mmask8 lm = static_cast<__mmask8>((1u << n) - 1u);
  if (a.out_bits && !a.obeta && a.cpv > 0.f) {  // sgn(dot * cpv) = sgn(dot): integer compare
    const __mmask8 bits = _mm512_cmpge_epi64_mask(dot, _mm512_setzero_si512()) & lm;
    *out_byte(a, row, hh, c0) = static_cast<uint8_t>(bits);
    return;
  }
  const __m256 v = _mm256_mul_ps(_mm512_cvtepi64_ps(dot), _mm256_set1_ps(a.cpv));
  if (a.out_bits) {
    const __m256 bo = a.obeta ? _mm256_maskz_loadu_ps(lm, a.obeta + hh * d + c0) : _mm256_setzero_ps();
    const __mmask8 bits = _mm256_cmp_ps_mask(_mm256_sub_ps(v, bo), _mm256_setzero_ps(), _CMP_GE_OQ) & lm;
    *out_byte(a, row, hh, c0) = static_cast<uint8_t>(bits);
  } else {
    _mm256_mask_storeu_ps(a.ctx + row * a.ldc + hh * d + c0, lm, v);
  }
}

BB_AVX512 void attention_head_avx512(const AttnArgs& a, int64_t bb, int64_t hh, HeadWork& w) {
  const int64_t L = a.l, d = a.h / a.heads, dw = words_for(d), lw = words_for(L);
  const int64_t lp = round_up(L, 8), dp = round_up(d, 8);
  prepare_work(w, L, d);
  const __m512 zero = _mm512_setzero_ps();
  // Q, K, V: rows of d values -> dw words (16 lanes per compare); K stored word-major.
  if (a.bits) gather_head_bits(a, bb, hh, w);
  for (int64_t j = 0; j < (a.bits ? 0 : L); ++j) {
    const float* row = a.qkv + (bb * L + j) * a.ld;
    for (int64_t ww = 0; ww < dw; ++ww) {
      uint64_t qb = 0, kb = 0, vb = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t c = ww * 64 + q * 16;
        if (c >= d) break;
        const __mmask16 lm = mask16(d - c);
        const int64_t ch = hh * d + c;
        if (a.variant != 2) {
          __m512 qv = _mm512_maskz_loadu_ps(lm, row + a.qoff + ch);
          __m512 kv = _mm512_maskz_loadu_ps(lm, row + a.koff + ch);
          if (a.bq) qv = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(lm, a.bq + ch));
          if (a.bk) kv = _mm512_sub_ps(kv, _mm512_maskz_loadu_ps(lm, a.bk + ch));
          qb |= static_cast<uint64_t>(_mm512_cmp_ps_mask(qv, zero, _CMP_GE_OQ) & lm) << (16 * q);
          kb |= static_cast<uint64_t>(_mm512_cmp_ps_mask(kv, zero, _CMP_GE_OQ) & lm) << (16 * q);
        }
        __m512 vv = _mm512_maskz_loadu_ps(lm, row + a.voff + ch);
        if (a.bv) vv = _mm512_sub_ps(vv, _mm512_maskz_loadu_ps(lm, a.bv + ch));
        vb |= static_cast<uint64_t>(_mm512_cmp_ps_mask(vv, zero, _CMP_GE_OQ) & lm) << (16 * q);
      }
      w.qh[j * dw + ww] = qb;
      w.kt[ww * lp + j] = kb;
      w.vrow[j * dw + ww] = vb;
    }
  }
  transpose_values(w, d, lw, dp);
  const float* mask = a.mask + bb * L;
  const int64_t nreal = real_key_bits(w, mask, L);

  if (a.variant == 2) {  // +1 at the real keys, 0 at masked ones: one context row per (batch, head)
    std::vector<int64_t> col(dp, 0);
    for (int64_t c = 0; c < d; ++c) {
      int64_t pc = 0;
      for (int64_t ww = 0; ww < lw; ++ww) pc += _mm_popcnt_u64(w.vt[ww * dp + c] & w.kreal[ww]);
      col[c] = 2 * pc - nreal;
    }
    if (a.out_bits && !a.obeta && a.cpv > 0.f && d <= 64) {  // the same d / 8 bytes in every query row
      uint64_t sw = 0;
      for (int64_t c0 = 0; c0 < d; c0 += 8)
        sw |= static_cast<uint64_t>(_mm512_cmpge_epi64_mask(_mm512_loadu_si512(col.data() + c0), _mm512_setzero_si512()))
              << c0;
      const __mmask16 bm = static_cast<__mmask16>((1u << (d / 8)) - 1u);
      const __m128i v = _mm_cvtsi64_si128(static_cast<long long>(sw));
      for (int64_t i = 0; i < L; ++i) _mm_mask_storeu_epi8(out_byte(a, bb * L + i, hh, 0), bm, v);
      return;
    }
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c0 = 0; c0 < d; c0 += 8)
        store_ctx8_avx512(a, bb * L + i, hh, d, c0,
                          _mm512_maskz_loadu_epi64(static_cast<__mmask8>(0xFF), col.data() + c0));
    return;
  }

  const int32_t* lim = a.variant == 0 ? a.lim + bb * lp : nullptr;
  uint64_t* arow = w.arow.data();
  // bit output without a beta and d <= 64 (d % 8 == 0): a query's d / 8 output bytes are gathered in
  // a register and stored at once (byte stores into the output would alias everything the loops read)
  const bool sign_word = a.out_bits && !a.obeta && a.cpv > 0.f && d <= 64;
  double* sig = a.sig ? a.sig + (bb * a.heads + hh) * L : nullptr;
  for (int64_t i0 = 0; i0 < L; i0 += 4) {
    const int64_t nq = std::min<int64_t>(4, L - i0);
    std::fill(arow, arow + 4 * lw, 0);
    if (a.variant == 0) {
      // bool attention, 4 queries x 8 keys per step: A = 1[popcount(q XOR k) <= lim_key]; the bits of
      // a word of 64 keys are gathered in registers
      for (int64_t jw = 0; jw < lw; ++jw) {
        uint64_t m0 = 0, m1 = 0, m2 = 0, m3 = 0;
        const int64_t jend = std::min<int64_t>(lp, jw * 64 + 64);
        for (int64_t j = jw * 64; j < jend; j += 8) {
          __m512i pc0 = _mm512_setzero_si512(), pc1 = pc0, pc2 = pc0, pc3 = pc0;
          for (int64_t ww = 0; ww < dw; ++ww) {
            const __m512i kv = _mm512_loadu_si512(&w.kt[ww * lp + j]);
            const uint64_t* qr = &w.qh[i0 * dw + ww];
            pc0 = _mm512_add_epi64(pc0, _mm512_popcnt_epi64(_mm512_xor_si512(kv, _mm512_set1_epi64(qr[0]))));
            pc1 = _mm512_add_epi64(pc1, _mm512_popcnt_epi64(_mm512_xor_si512(kv, _mm512_set1_epi64(qr[dw]))));
            pc2 = _mm512_add_epi64(pc2, _mm512_popcnt_epi64(_mm512_xor_si512(kv, _mm512_set1_epi64(qr[2 * dw]))));
            pc3 = _mm512_add_epi64(pc3, _mm512_popcnt_epi64(_mm512_xor_si512(kv, _mm512_set1_epi64(qr[3 * dw]))));
          }
          const __m512i lv = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim + j)));
          const int sh = static_cast<int>(j % 64);
          m0 |= static_cast<uint64_t>(_mm512_cmple_epi64_mask(pc0, lv)) << sh;
          m1 |= static_cast<uint64_t>(_mm512_cmple_epi64_mask(pc1, lv)) << sh;
          m2 |= static_cast<uint64_t>(_mm512_cmple_epi64_mask(pc2, lv)) << sh;
          m3 |= static_cast<uint64_t>(_mm512_cmple_epi64_mask(pc3, lv)) << sh;
        }
        arow[0 * lw + jw] = m0;
        arow[1 * lw + jw] = m1;
        arow[2 * lw + jw] = m2;
        arow[3 * lw + jw] = m3;
      }
      if (sig) {
        for (int64_t t = 0; t < nq; ++t) {
          if (!real_query(mask, i0 + t)) continue;
          for (int64_t j = 0; j < L; ++j) sig[j] += static_cast<double>((arow[t * lw + j / 64] >> (j % 64)) & 1u);
        }
      }
    } else {
      // softmax in float, then the elastic unsigned quantizer of the probabilities
      const __m512i vd = _mm512_set1_epi64(d);
      const __m256 vcqk = _mm256_set1_ps(a.cqk);
      const int64_t l16 = round_up(L, 16);
      float* srow = w.srow.data();
      for (int64_t t = 0; t < nq; ++t) {
        const int64_t i = i0 + t;
        for (int64_t j = 0; j < lp; j += 8) {
          __m512i pc = _mm512_setzero_si512();
          for (int64_t ww = 0; ww < dw; ++ww) {
            const __m512i qb = _mm512_set1_epi64(static_cast<long long>(w.qh[i * dw + ww]));
            pc = _mm512_add_epi64(pc,
                                  _mm512_popcnt_epi64(_mm512_xor_si512(qb, _mm512_loadu_si512(&w.kt[ww * lp + j]))));
          }
          const __m512i dot = _mm512_sub_epi64(vd, _mm512_slli_epi64(pc, 1));
          const __mmask8 lm = static_cast<__mmask8>((1u << std::min<int64_t>(8, L - j)) - 1u);
          const __m256 sc = _mm256_add_ps(_mm256_mul_ps(_mm512_cvtepi64_ps(dot), vcqk),
                                          _mm256_maskz_loadu_ps(lm, mask + j));
          _mm256_storeu_ps(srow + j, sc);
        }
        __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
        for (int64_t j = 0; j < l16; j += 16) {
          const __mmask16 lm = mask16(L - j);
          vmax = _mm512_mask_max_ps(vmax, lm, vmax, _mm512_maskz_loadu_ps(lm, srow + j));
        }
        const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
        __m512 vsum = _mm512_setzero_ps();
        for (int64_t j = 0; j < l16; j += 16) {
          const __mmask16 lm = mask16(L - j);
          const __m512 e = _mm512_maskz_mov_ps(lm, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(lm, srow + j), mx)));
          _mm512_storeu_ps(srow + j, e);
          vsum = _mm512_add_ps(vsum, e);
        }
        const __m512 sum = _mm512_set1_ps(_mm512_reduce_add_ps(vsum));
        const __m512 ap = _mm512_set1_ps(a.alpha_p), bp = _mm512_set1_ps(a.beta_p);
        const __m512 one = _mm512_set1_ps(1.f), half = _mm512_set1_ps(0.5f);
        for (int64_t j = 0; j < l16; j += 16) {
          const __mmask16 lm = mask16(L - j);
          const __m512 p = _mm512_div_ps(_mm512_loadu_ps(srow + j), sum);
          const __m512 u = _mm512_div_ps(_mm512_sub_ps(p, bp), ap);
          const __m512 c = _mm512_min_ps(_mm512_max_ps(u, zero), one);
          const __mmask16 bit = _mm512_cmp_ps_mask(_mm512_add_ps(c, half), one, _CMP_GE_OQ) & lm;
          arow[t * lw + j / 64] |= static_cast<uint64_t>(bit) << (j % 64);
          if (sig) _mm512_storeu_ps(srow + j, p);  // the probabilities, for the significance below
        }
        for (int64_t ww = 0; ww < lw; ++ww) arow[t * lw + ww] &= w.kreal[ww];  // masked keys: 0
        if (sig && real_query(mask, i))
          for (int64_t j = 0; j < L; ++j) sig[j] += static_cast<double>(srow[j]);
      }
    }
    // context of the (up to) 4 queries: dot_c = 2 popcount(A AND V+_c) - popcount(A), 8 channels x
    // 4 queries per step (rows of arow past nq are 0 and not stored)
    int64_t pa[4] = {0, 0, 0, 0};
    for (int t = 0; t < 4; ++t)
      for (int64_t ww = 0; ww < lw; ++ww) pa[t] += _mm_popcnt_u64(arow[t * lw + ww]);
    const __m512i vpa0 = _mm512_set1_epi64(pa[0]), vpa1 = _mm512_set1_epi64(pa[1]);
    const __m512i vpa2 = _mm512_set1_epi64(pa[2]), vpa3 = _mm512_set1_epi64(pa[3]);
    const __m512i z = _mm512_setzero_si512();
    uint64_t sw0 = 0, sw1 = 0, sw2 = 0, sw3 = 0;  // sign_word: the bits of the 4 queries
    for (int64_t c0 = 0; c0 < dp; c0 += 8) {
      __m512i pc0 = _mm512_setzero_si512(), pc1 = pc0, pc2 = pc0, pc3 = pc0;
      for (int64_t ww = 0; ww < lw; ++ww) {
        const __m512i vv = _mm512_loadu_si512(&w.vt[ww * dp + c0]);
        const uint64_t* ar = arow + ww;
        pc0 = _mm512_add_epi64(pc0, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_set1_epi64(ar[0]), vv)));
        pc1 = _mm512_add_epi64(pc1, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_set1_epi64(ar[lw]), vv)));
        pc2 = _mm512_add_epi64(pc2, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_set1_epi64(ar[2 * lw]), vv)));
        pc3 = _mm512_add_epi64(pc3, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_set1_epi64(ar[3 * lw]), vv)));
      }
      const __m512i dot0 = _mm512_sub_epi64(_mm512_slli_epi64(pc0, 1), vpa0);
      const __m512i dot1 = _mm512_sub_epi64(_mm512_slli_epi64(pc1, 1), vpa1);
      const __m512i dot2 = _mm512_sub_epi64(_mm512_slli_epi64(pc2, 1), vpa2);
      const __m512i dot3 = _mm512_sub_epi64(_mm512_slli_epi64(pc3, 1), vpa3);
      if (sign_word) {  // sgn(dot * cpv) = sgn(dot): integer compare
        sw0 |= static_cast<uint64_t>(_mm512_cmpge_epi64_mask(dot0, z)) << c0;
        sw1 |= static_cast<uint64_t>(_mm512_cmpge_epi64_mask(dot1, z)) << c0;
        sw2 |= static_cast<uint64_t>(_mm512_cmpge_epi64_mask(dot2, z)) << c0;
        sw3 |= static_cast<uint64_t>(_mm512_cmpge_epi64_mask(dot3, z)) << c0;
        continue;
      }
      const __m512i dots[4] = {dot0, dot1, dot2, dot3};
      for (int64_t t = 0; t < nq; ++t) store_ctx8_avx512(a, bb * L + i0 + t, hh, d, c0, dots[t]);
    }
    if (sign_word) {  // the head's d / 8 bytes of each query row at once
      const __mmask16 bm = static_cast<__mmask16>((1u << (d / 8)) - 1u);
      const uint64_t sws[4] = {sw0, sw1, sw2, sw3};
      for (int64_t t = 0; t < nq; ++t)
        _mm_mask_storeu_epi8(out_byte(a, bb * L + i0 + t, hh, 0), bm, _mm_cvtsi64_si128(static_cast<long long>(sws[t])));
    }
  }
}

// ------------------------------------------------------------------------------------------
// LayerNorm: out = (v - mean) / sqrt(var + eps) * gamma + beta, v = a + r (r optional)
// ------------------------------------------------------------------------------------------
// Up to kMaxSignOuts sets of sign bits of a LayerNorm's output rows: bits[o] [m, ldb] words of
// sgn(y - qbeta[o]) (qbeta[o] may be null), e.g. one per input quantizer of BiT's Q, K, V projections.
constexpr int kMaxSignOuts = 3;
struct SignOuts {
  int n = 0;
  uint64_t* bits[kMaxSignOuts] = {nullptr, nullptr, nullptr};
  const float* qbeta[kMaxSignOuts] = {nullptr, nullptr, nullptr};
  int64_t ldb = 0;
};

void add_layernorm_scalar_row(const float* a, const float* r, int64_t h, const float* g, const float* b, float eps,
                              float* out, float* tmp, const SignOuts& so, int64_t row) {
  double s = 0.0;
  for (int64_t i = 0; i < h; ++i) {
    tmp[i] = r ? a[i] + r[i] : a[i];
    s += tmp[i];
  }
  const float mean = static_cast<float>(s / static_cast<double>(h));
  double v = 0.0;
  for (int64_t i = 0; i < h; ++i) {
    const double dlt = static_cast<double>(tmp[i] - mean);
    v += dlt * dlt;
  }
  const float var = static_cast<float>(v / static_cast<double>(h));
  const float inv = 1.0f / std::sqrt(var + eps);
  for (int64_t i = 0; i < h; ++i) out[i] = (tmp[i] - mean) * inv * g[i] + b[i];
  for (int o = 0; o < so.n; ++o) {
    const PackArgs pa{out, h, 1, h, so.qbeta[o], 0, 0, 1.f, 0.f, so.bits[o] + row * so.ldb, words_for(h), nullptr};
    pack_range_scalar(pa, 0, 1);
  }
}

// R rows at once (independent dependency chains interleaved; every row is computed with exactly the
// operations, in the order, of the one-row formula: float v = a + r, mean and variance accumulated
// in float64 over 2 x 8 lanes, y = fl(fl(fl(v - mean) * inv) * gamma) + beta). The sign bits of `so`
// (rows `row`.. of its outputs) are formed from the registers of y (ties to +1).
template <int R>
BB_AVX512 void add_layernorm_rows_avx512(const float* a, int64_t lda, const float* r, int64_t ldr, int64_t h,
                                         const float* g, const float* b, float eps, float* out, int64_t ldo,
                                         float* tmp, const SignOuts& so, int64_t row) {
  const int64_t h16 = (h + 15) / 16 * 16;
  __m512d s0[R], s1[R];
  for (int t = 0; t < R; ++t) s0[t] = s1[t] = _mm512_setzero_pd();
  for (int64_t i = 0; i < h16; i += 16) {
    const int64_t n = std::min<int64_t>(16, h - i);
    const __mmask16 lm = n == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
    for (int t = 0; t < R; ++t) {
      __m512 v = _mm512_maskz_loadu_ps(lm, a + t * lda + i);
      if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lm, r + t * ldr + i));
      _mm512_mask_storeu_ps(tmp + t * h16 + i, lm, v);
      s0[t] = _mm512_add_pd(s0[t], _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      s1[t] = _mm512_add_pd(s1[t], _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
  }
  __m512 vm[R];
  __m512d q0[R], q1[R];
  for (int t = 0; t < R; ++t) {
    vm[t] = _mm512_set1_ps(static_cast<float>(_mm512_reduce_add_pd(_mm512_add_pd(s0[t], s1[t])) / static_cast<double>(h)));
    q0[t] = q1[t] = _mm512_setzero_pd();
  }
  for (int64_t i = 0; i < h16; i += 16) {
    const int64_t n = std::min<int64_t>(16, h - i);
    const __mmask16 lm = n == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
    for (int t = 0; t < R; ++t) {
      const __m512 dlt = _mm512_maskz_sub_ps(lm, _mm512_maskz_loadu_ps(lm, tmp + t * h16 + i), vm[t]);
      const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(dlt));
      const __m512d d1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(dlt, 1));
      q0[t] = _mm512_fmadd_pd(d0, d0, q0[t]);
      q1[t] = _mm512_fmadd_pd(d1, d1, q1[t]);
    }
  }
  __m512 inv[R];
  for (int t = 0; t < R; ++t) {
    const float var = static_cast<float>(_mm512_reduce_add_pd(_mm512_add_pd(q0[t], q1[t])) / static_cast<double>(h));
    inv[t] = _mm512_set1_ps(1.0f / std::sqrt(var + eps));
  }
  uint64_t word[kMaxSignOuts][R];
  for (int o = 0; o < kMaxSignOuts; ++o)
    for (int t = 0; t < R; ++t) word[o][t] = 0;
  for (int64_t i = 0; i < h16; i += 16) {
    const int64_t n = std::min<int64_t>(16, h - i);
    const __mmask16 lm = n == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
    const __m512 gv = _mm512_maskz_loadu_ps(lm, g + i), bv = _mm512_maskz_loadu_ps(lm, b + i);
    __m512 qb[kMaxSignOuts];
    for (int o = 0; o < so.n; ++o) qb[o] = so.qbeta[o] ? _mm512_maskz_loadu_ps(lm, so.qbeta[o] + i) : _mm512_setzero_ps();
    for (int t = 0; t < R; ++t) {
      const __m512 dlt = _mm512_sub_ps(_mm512_maskz_loadu_ps(lm, tmp + t * h16 + i), vm[t]);
      const __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(dlt, inv[t]), gv), bv);
      _mm512_mask_storeu_ps(out + t * ldo + i, lm, y);
      for (int o = 0; o < so.n; ++o) {
        const __mmask16 mk = _mm512_cmp_ps_mask(_mm512_sub_ps(y, qb[o]), _mm512_setzero_ps(), _CMP_GE_OQ) & lm;
        word[o][t] |= static_cast<uint64_t>(mk) << (i % 64);
      }
    }
    if ((i + 16) % 64 == 0 || i + 16 >= h16) {  // a word (or the row) is complete
      for (int o = 0; o < so.n; ++o)
        for (int t = 0; t < R; ++t) {
          so.bits[o][(row + t) * so.ldb + i / 64] = word[o][t];
          word[o][t] = 0;
        }
    }
  }
}

// out = LayerNorm(a + r) ([m, h] rows), and the sign bits of `so`.
void layernorm_rows(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                    int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                    const SignOuts& so) {
  constexpr int kRows = 4;  // rows per AVX-512 step
  parallel_for(nthreads, (m + kRows - 1) / kRows, [&](int64_t g0, int64_t g1) {
    thread_local std::vector<float> tmp;
    tmp.resize(static_cast<size_t>(kRows * (h + 16)));
    for (int64_t i = g0 * kRows; i < std::min(m, g1 * kRows);) {
      const float* ai = a + i * lda;
      const float* ri = r ? r + i * ldr : nullptr;
      if (isa >= 2 && m - i >= kRows) {
        add_layernorm_rows_avx512<kRows>(ai, lda, ri, ldr, h, gamma, beta, eps, out + i * ldo, ldo, tmp.data(), so, i);
        i += kRows;
      } else if (isa >= 2) {
        add_layernorm_rows_avx512<1>(ai, lda, ri, ldr, h, gamma, beta, eps, out + i * ldo, ldo, tmp.data(), so, i);
        ++i;
      } else {
        add_layernorm_scalar_row(ai, ri, h, gamma, beta, eps, out + i * ldo, tmp.data(), so, i);
        ++i;
      }
    }
  });
}

// ------------------------------------------------------------------------------------------
// Register-only ceiling (inline assembly, so that the compiler can neither hoist nor merge work):
//   kind 0: per iteration 24 independent  tmp = x XOR w_g; tmp = VPOPCNTQ tmp; acc_i += tmp
//           (the instruction mix of the GEMM's inner loop, without its loads): 24 x 512 binary MACs
//   kind 1: 24 independent VPOPCNTQ per iteration (the instruction alone).
// ------------------------------------------------------------------------------------------
BB_AVX512 void ceiling_avx512_thread(int64_t iters, int kind) {
  if (iters <= 0) return;
  if (kind == 0) {
    __asm__ volatile(
      "vpternlogq $0xff, %%zmm30, %%zmm30, %%zmm30\n\t"
      "vpxorq %%zmm24, %%zmm24, %%zmm24\n\t"
      "vpxorq %%zmm25, %%zmm25, %%zmm25\n\t"
      "vpxorq %%zmm26, %%zmm26, %%zmm26\n\t"
      "vpxorq %%zmm27, %%zmm27, %%zmm27\n\t"
      "vpxorq %%zmm28, %%zmm28, %%zmm28\n\t"
      "vpxorq %%zmm29, %%zmm29, %%zmm29\n\t"
      "1:\n\t"
      "vpxorq %%zmm24, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm0, %%zmm0\n\t"
      "vpxorq %%zmm25, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm1, %%zmm1\n\t"
      "vpxorq %%zmm26, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm2, %%zmm2\n\t"
      "vpxorq %%zmm27, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm3, %%zmm3\n\t"
      "vpxorq %%zmm28, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm4, %%zmm4\n\t"
      "vpxorq %%zmm29, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm5, %%zmm5\n\t"
      "vpxorq %%zmm24, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm6, %%zmm6\n\t"
      "vpxorq %%zmm25, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm7, %%zmm7\n\t"
      "vpxorq %%zmm26, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm8, %%zmm8\n\t"
      "vpxorq %%zmm27, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm9, %%zmm9\n\t"
      "vpxorq %%zmm28, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm10, %%zmm10\n\t"
      "vpxorq %%zmm29, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm11, %%zmm11\n\t"
      "vpxorq %%zmm24, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm12, %%zmm12\n\t"
      "vpxorq %%zmm25, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm13, %%zmm13\n\t"
      "vpxorq %%zmm26, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm14, %%zmm14\n\t"
      "vpxorq %%zmm27, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm15, %%zmm15\n\t"
      "vpxorq %%zmm28, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm16, %%zmm16\n\t"
      "vpxorq %%zmm29, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm17, %%zmm17\n\t"
      "vpxorq %%zmm24, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm18, %%zmm18\n\t"
      "vpxorq %%zmm25, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm19, %%zmm19\n\t"
      "vpxorq %%zmm26, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm20, %%zmm20\n\t"
      "vpxorq %%zmm27, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm21, %%zmm21\n\t"
      "vpxorq %%zmm28, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm22, %%zmm22\n\t"
      "vpxorq %%zmm29, %%zmm30, %%zmm31\n\t"
      "vpopcntq %%zmm31, %%zmm31\n\t"
      "vpaddq %%zmm31, %%zmm23, %%zmm23\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(iters)
      :
      : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11",
        "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22",
        "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31", "cc");
  } else {
    __asm__ volatile(
      "1:\n\t"
      "vpopcntq %%zmm0, %%zmm0\n\t"
      "vpopcntq %%zmm1, %%zmm1\n\t"
      "vpopcntq %%zmm2, %%zmm2\n\t"
      "vpopcntq %%zmm3, %%zmm3\n\t"
      "vpopcntq %%zmm4, %%zmm4\n\t"
      "vpopcntq %%zmm5, %%zmm5\n\t"
      "vpopcntq %%zmm6, %%zmm6\n\t"
      "vpopcntq %%zmm7, %%zmm7\n\t"
      "vpopcntq %%zmm8, %%zmm8\n\t"
      "vpopcntq %%zmm9, %%zmm9\n\t"
      "vpopcntq %%zmm10, %%zmm10\n\t"
      "vpopcntq %%zmm11, %%zmm11\n\t"
      "vpopcntq %%zmm12, %%zmm12\n\t"
      "vpopcntq %%zmm13, %%zmm13\n\t"
      "vpopcntq %%zmm14, %%zmm14\n\t"
      "vpopcntq %%zmm15, %%zmm15\n\t"
      "vpopcntq %%zmm16, %%zmm16\n\t"
      "vpopcntq %%zmm17, %%zmm17\n\t"
      "vpopcntq %%zmm18, %%zmm18\n\t"
      "vpopcntq %%zmm19, %%zmm19\n\t"
      "vpopcntq %%zmm20, %%zmm20\n\t"
      "vpopcntq %%zmm21, %%zmm21\n\t"
      "vpopcntq %%zmm22, %%zmm22\n\t"
      "vpopcntq %%zmm23, %%zmm23\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(iters)
      :
      : "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11",
        "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22",
        "zmm23", "zmm24", "zmm25", "zmm26", "zmm27", "zmm28", "zmm29", "zmm30", "zmm31", "cc");
  }
}

// One embedding row: +-alpha from the packed bits, then (word + position) + token type.
BB_AVX512 void embed_row_avx512(const uint64_t* row, float al, const float* pr, const float* tr, int64_t h,
                                float* o) {
  const __m512 pos = _mm512_set1_ps(al), neg = _mm512_set1_ps(-al);
  for (int64_t c = 0; c < h; c += 16) {
    const __mmask16 lm = mask16(h - c);
    const __mmask16 sb = static_cast<__mmask16>(row[c / 64] >> (c % 64));
    const __m512 wv = _mm512_mask_blend_ps(sb, neg, pos);
    const __m512 e =
        _mm512_add_ps(_mm512_add_ps(wv, _mm512_maskz_loadu_ps(lm, pr + c)), _mm512_maskz_loadu_ps(lm, tr + c));
    _mm512_mask_storeu_ps(o + c, lm, e);
  }
}

// Attention of every (batch row, head) of `a` (a.lim and a.sig are set here).
void run_attention(int isa, int nthreads, AttnArgs a) {
  const int64_t b = a.b, l = a.l, d = a.h / a.heads, lp = round_up(l, 8);
  if (a.out_bits && d % 8 != 0) return;  // caller error: bit output needs whole bytes per head (d % 8 == 0)
  const float* mask = a.mask;
  // bool attention: per key the largest popcount(q XOR k) with fl(fl((d - 2 pc) * cqk) + m) > 0
  // (non-increasing in pc, so a bisection finds it; -1 when no pc qualifies, and for masked keys)
  std::vector<int32_t> lim;
  if (a.variant == 0) {
    lim.assign(b * lp, -1);
    auto positive = [&](int64_t pc, float m) { return static_cast<float>(d - 2 * pc) * a.cqk + m > 0.f; };
    for (int64_t bb = 0; bb < b; ++bb) {
      for (int64_t j = 0; j < l; ++j) {
        const float m = mask[bb * l + j];
        if (!real_key(mask + bb * l, j) || !positive(0, m)) continue;
        int64_t lo = 0, hi = d + 1;  // positive(lo) holds; hi is past the end or fails
        while (hi - lo > 1) {
          const int64_t mid = (lo + hi) / 2;
          if (positive(mid, m))
            lo = mid;
          else
            hi = mid;
        }
        lim[bb * lp + j] = static_cast<int32_t>(lo);
      }
    }
  }
  if (a.out_bits) {  // zero the padding bytes of every output row (heads write the bytes of their channels)
    const int64_t used = a.h / 8, total = a.ldo * 8;
    for (int64_t r = 0; r < b * l; ++r)
      std::memset(reinterpret_cast<uint8_t*>(a.out_bits + r * a.ldo) + used, 0, static_cast<size_t>(total - used));
  }
  a.lim = a.variant == 0 ? lim.data() : nullptr;
  if (a.variant == 2) a.sig = nullptr;
  const int64_t heads = a.heads, rows = b * l, db = d / 8;
  thread_local std::vector<uint8_t> scratch;
  if (a.out_bits && nthreads > 1 && b * heads > 1) {
    scratch.resize(static_cast<size_t>(heads * rows * db));
    a.head_bytes = scratch.data();
  }
  parallel_for(nthreads, b * heads, [&](int64_t t0, int64_t t1) {
    thread_local HeadWork w;
    for (int64_t t = t0; t < t1; ++t) {
      if (isa >= 2)
        attention_head_avx512(a, t / heads, t % heads, w);
      else
        attention_head_scalar(a, t / heads, t % heads, w);
    }
  });
  if (a.head_bytes)  // head-major scratch -> rows
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = reinterpret_cast<uint8_t*>(a.out_bits + r * a.ldo);
      for (int64_t hh = 0; hh < heads; ++hh) std::memcpy(dst + hh * db, a.head_bytes + (hh * rows + r) * db, db);
    }
}

}  // namespace

// ==========================================================================================
// C ABI
// ==========================================================================================
extern "C" {

// 2 = AVX-512 with VPOPCNTDQ (+BW/DQ/VL), 1 = AVX2, 0 = portable.
int bb_best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

int bb_max_threads() { return affinity_cpus(); }

// Thread-pool statistics since the last call: [seconds the caller waited for helpers after running
// out of work, parallel jobs, chunks run by helper threads, chunks in total].
void bb_pool_stats(double* out) { ThreadPool::instance().read_stats(out); }

void bb_pack_rows(int isa, int nthreads, const float* x, int64_t ldx, int64_t m, int64_t k, const float* beta, int act,
                  int quant, float qalpha, float thr, uint64_t* out, int64_t ldo, int32_t* pop) {
  const PackArgs a{x, ldx, m, k, beta, act, quant, qalpha, thr, out, ldo, pop};
  if (isa >= 2)
    parallel_for(nthreads, m, [&](int64_t r0, int64_t r1) { pack_range_avx512(a, r0, r1); });
  else
    parallel_for(nthreads, m, [&](int64_t r0, int64_t r1) { pack_range_scalar(a, r0, r1); });
}

void bb_gemm(int isa, int nthreads, const uint64_t* x, int64_t ldx, int64_t m, const uint64_t* w, int64_t n,
             int64_t kw, int64_t k, int mode, const int32_t* xpop, const float* alpha, const float* bias, float* y,
             int64_t ldy) {
  const GemmArgs a{x, ldx, m, w, n, kw, k, mode, xpop, alpha, bias, y, ldy};
  if (m <= 0 || n <= 0) return;
  const int64_t panels = (n + kPanel - 1) / kPanel;
  if (isa >= 2) {
    const int64_t tasks = panels * ((m + 3) / 4);
    if (mode == 0)
      parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx512_range<0>(a, t0, t1); });
    else
      parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx512_range<1>(a, t0, t1); });
  } else if (isa == 1) {
    const int64_t tasks = panels * ((m + 1) / 2);
    if (mode == 0)
      parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx2_range<0>(a, t0, t1); });
    else
      parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx2_range<1>(a, t0, t1); });
  } else {
    parallel_for(nthreads, panels, [&](int64_t p0, int64_t p1) { gemm_portable_range(a, p0, p1); });
  }
}

// Binary GEMM whose output is quantized on the fly: ybits = bits of Q(alpha * dot + bias) with the
// activation quantizer (act, quant, qbeta, qalpha, thr) of bb_pack_rows; ypop (optional) = per-row
// popcount. The AVX-512 path never writes the float output; other paths go through a float buffer.
void bb_gemm_q(int isa, int nthreads, const uint64_t* x, int64_t ldx, int64_t m, const uint64_t* w, int64_t n,
               int64_t kw, int64_t k, int mode, const int32_t* xpop, const float* alpha, const float* bias,
               uint64_t* ybits, int64_t ldyb, int32_t* ypop, const float* qbeta, int act, int quant, float qalpha,
               float thr) {
  if (m <= 0 || n <= 0) return;
  const bool fused = isa >= 2 && !(act == 2 && !(quant == 0 && qbeta == nullptr));
  if (!fused) {
    thread_local std::vector<float> tmp;
    tmp.resize(static_cast<size_t>(m * n));
    bb_gemm(isa, nthreads, x, ldx, m, w, n, kw, k, mode, xpop, alpha, bias, tmp.data(), n);
    bb_pack_rows(isa, nthreads, tmp.data(), n, m, n, qbeta, act, quant, qalpha, thr, ybits, ldyb, ypop);
    return;
  }
  const int64_t used = (n + 7) / 8, total = words_for(n) * 8;  // this output's words only (ldyb may be wider)
  for (int64_t r = 0; r < m; ++r)
    std::memset(reinterpret_cast<uint8_t*>(ybits + r * ldyb) + used, 0, static_cast<size_t>(total - used));
  GemmArgs a{x, ldx, m, w, n, kw, k, mode, xpop, alpha, bias, nullptr, 0};
  a.ybits = ybits;
  a.ldyb = ldyb;
  a.qbeta = qbeta;
  a.act = act;
  a.quant = quant;
  a.qalpha = qalpha;
  a.thr = thr;
  a.row_major = nthreads > 1;
  const int64_t tasks = ((n + kPanel - 1) / kPanel) * ((m + 3) / 4);
  if (mode == 0)
    parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx512_range<0>(a, t0, t1); });
  else
    parallel_for(nthreads, tasks, [&](int64_t t0, int64_t t1) { gemm_avx512_range<1>(a, t0, t1); });
  if (ypop) {
    const int64_t kwn = words_for(n);
    for (int64_t r = 0; r < m; ++r) {
      int32_t c = 0;
      for (int64_t q = 0; q < kwn; ++q) c += static_cast<int32_t>(popcount64(ybits[r * ldyb + q]));
      ypop[r] = c;
    }
  }
}

void bb_attention(int isa, int nthreads, int variant, const float* qkv, int64_t ld, int64_t qoff, int64_t koff,
                  int64_t voff, int64_t b, int64_t l, int64_t h, int64_t heads, const float* mask, const float* bq,
                  const float* bk, const float* bv, float cqk, float alpha_p, float beta_p, float cpv, float* ctx,
                  int64_t ldc, uint64_t* out_bits, int64_t ldo, const float* obeta, double* sig) {
  run_attention(isa, nthreads, AttnArgs{variant, qkv, ld, qoff, koff, voff, b, l, h, heads, mask, bq, bk, bv, cqk,
                                        alpha_p, beta_p, cpv, ctx, ldc, out_bits, ldo, obeta, nullptr, sig});
}

// bb_attention on Q, K, V sign bits already quantized by the QKV GEMM (bb_gemm_q with the betas
// bq, bk, bv): `bits` [B*L, ldb] words, Q channel c at bit qbit + c of a row, K at kbit + c, V at vbit + c.
void bb_attention_bits(int isa, int nthreads, int variant, const uint64_t* bits, int64_t ldb, int64_t qbit,
                       int64_t kbit, int64_t vbit, int64_t b, int64_t l, int64_t h, int64_t heads, const float* mask,
                       float cqk, float alpha_p, float beta_p, float cpv, float* ctx, int64_t ldc, uint64_t* out_bits,
                       int64_t ldo, const float* obeta, double* sig) {
  AttnArgs a{variant, nullptr, 0,   0,    0,        0,   b,     l,       h,      heads,  mask,    nullptr, nullptr,
             nullptr, cqk,     alpha_p, beta_p, cpv, ctx, ldc, out_bits, ldo, obeta, nullptr, sig};
  a.bits = bits;
  a.ldb = ldb;
  a.qbit = qbit;
  a.kbit = kbit;
  a.vbit = vbit;
  run_attention(isa, nthreads, a);
}

// out = LayerNorm(a + r); when `bits` is given, also the sign bits sgn(out - qbeta) of every row
// ([m, ldb] words; qbeta may be null).
void bb_add_layernorm(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                      int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                      uint64_t* bits, int64_t ldb, const float* qbeta) {
  SignOuts so;
  if (bits) {
    so.n = 1;
    so.bits[0] = bits;
    so.qbeta[0] = qbeta;
    so.ldb = ldb;
  }
  layernorm_rows(isa, nthreads, a, lda, r, ldr, m, h, gamma, beta, eps, out, ldo, so);
}

// bb_add_layernorm with `nbits` (0..3) sets of sign bits: bits[o] [m, ldb] words of sgn(out - qbeta[o])
// (qbeta null or qbeta[o] null: no beta), all formed while the row is in registers.
void bb_add_layernorm_bits(int isa, int nthreads, const float* a, int64_t lda, const float* r, int64_t ldr, int64_t m,
                           int64_t h, const float* gamma, const float* beta, float eps, float* out, int64_t ldo,
                           int nbits, uint64_t* const* bits, int64_t ldb, const float* const* qbeta) {
  SignOuts so;
  so.n = std::max(0, std::min(nbits, kMaxSignOuts));
  for (int o = 0; o < so.n; ++o) {
    so.bits[o] = bits[o];
    so.qbeta[o] = qbeta ? qbeta[o] : nullptr;
  }
  so.ldb = ldb;
  layernorm_rows(isa, nthreads, a, lda, r, ldr, m, h, gamma, beta, eps, out, ldo, so);
}

// Word embedding (packed rows, +-alpha) + position + token type, in Paddle's order of addition:
// e = fl(fl(word + pos) + type). Returns the number of out-of-range ids (0 = ok).
int64_t bb_embed(int isa, int nthreads, const int64_t* ids, const int64_t* types, int64_t b, int64_t l,
                 const uint64_t* wbits, int64_t hw, const float* walpha, int64_t vocab, const float* pos,
                 int64_t npos, const float* temb, int64_t ntype, int64_t h, float* out) {
  int64_t bad = 0;
  if (l > npos) return b * l;
  for (int64_t t = 0; t < b * l; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab || (types && (types[t] < 0 || types[t] >= ntype))) ++bad;
  }
  if (bad) return bad;
  parallel_for(nthreads, b * l, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t id = ids[t], p = t % l, ty = types ? types[t] : 0;
      const uint64_t* row = wbits + id * hw;
      const float al = walpha[id];
      const float* pr = pos + p * h;
      const float* tr = temb + ty * h;
      float* o = out + t * h;
      if (isa >= 2) {
        embed_row_avx512(row, al, pr, tr, h, o);
        continue;
      }
      for (int64_t c = 0; c < h; ++c) {
        const float wv = ((row[c / 64] >> (c % 64)) & 1u) ? al : -al;
        o[c] = (wv + pr[c]) + tr[c];
      }
    }
  });
  return 0;
}

// Micro-benchmarks. kind 0: register-only ceiling of acc += popcount(x XOR w) (24 independent
// chains, 512 binary MACs per VPOPCNTQ); kind 1: VPOPCNTQ alone (dependent chains of popcount(xor)).
// Each of `nthreads` threads (plain std::threads) runs `iters` iterations; returns the total binary
// MAC/s over the wall time of the slowest thread; -1 without AVX-512.
double bb_ceiling(int nthreads, int64_t iters, int kind) {
  if (bb_best_isa() < 2) return -1.0;
  nthreads = std::max(1, nthreads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> team;
  for (int i = 1; i < nthreads; ++i) team.emplace_back([=] { ceiling_avx512_thread(iters, kind); });
  ceiling_avx512_thread(iters, kind);
  for (auto& t : team) t.join();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(nthreads) * static_cast<double>(iters) * 24.0 * 512.0 / sec;
}

// Binary GEMM micro-benchmark on random bits (buffers allocated and touched before timing): median
// seconds of `reps` calls of bb_gemm with an [m, k] x [n, k] product; *macs_per_s = m n k / median.
double bb_gemm_bench(int isa, int nthreads, int64_t m, int64_t n, int64_t k, int reps, double* macs_per_s) {
  const int64_t kw = words_for(k), panels = (n + kPanel - 1) / kPanel;
  std::vector<uint64_t> x(m * kw), w(panels * kw * kPanel);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (auto& v : x) v = next();
  for (auto& v : w) v = next();
  if (k % 64)
    for (int64_t r = 0; r < m; ++r) x[r * kw + kw - 1] &= (uint64_t{1} << (k % 64)) - 1;
  std::vector<float> alpha(n, 1.f), bias(n, 0.f), y(m * n, 0.f);
  bb_gemm(isa, nthreads, x.data(), kw, m, w.data(), n, kw, k, 0, nullptr, alpha.data(), bias.data(), y.data(), n);
  std::vector<double> times;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    bb_gemm(isa, nthreads, x.data(), kw, m, w.data(), n, kw, k, 0, nullptr, alpha.data(), bias.data(), y.data(), n);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  if (macs_per_s) *macs_per_s = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / med;
  return med;
}

}  // extern "C"
