// The whole packed BERT forward pass (embeddings, encoder, pooler, head) over the kernels of
// binbert_kernels.cc, with no Paddle dependency.
//
// Called by the Paddle operator binbert_bert_forward (binbert_ops.cc) and by the C API of
// paddle_binbert.runtime (paddle_binbert/runtime/csrc/binbert_capi.cc): both hand it views of
// their tensors, so the network is orchestrated in exactly one place.
//
// Layout of the weight list `W` (built by paddle_binbert/engine/layout.py, kept in sync with the
// constants there):
//   0 word bits [V, ceil(H/64)] int64, 1 word alpha [V], 2 position [P, H], 3 token type [T, H],
//   4 / 5 embedding LayerNorm weight / bias,
//   per layer l, base = 6 + 42 l:
//     base + 5 j (j = 0 q / fused qkv, 1 k, 2 v, 3 out, 4 ffn1, 5 ffn2): panels, alpha, bias, input beta, input alpha
//     base + 30: cqk, cpv, alpha_p, beta_p ([1] each), bq, bk, bv ([H] each), (unused)
//     base + 38: norm1 weight, norm1 bias, norm2 weight, norm2 bias
//   then the pooler linear (5 tensors as above) and the head weight [H, C], head bias [C].
//
// Integer configuration `icfg` (enum Cfg below), optionally followed by one token budget per layer
// (a Drop-and-Restore length configuration); float configuration `fcfg`: embedding LayerNorm eps,
// encoder LayerNorm eps, GELU sign threshold.

#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace binbert {

// Element types of a TensorView (packed bits travel as int64 words).
enum DType : int32_t { kFloat32 = 0, kInt64 = 1, kInt32 = 2, kOtherType = 3 };

// A read-only view of one tensor owned by the caller (a paddle::Tensor, a numpy array...).
struct TensorView {
  const void* data = nullptr;
  int64_t numel = 0;
  int32_t ndim = 0;
  int64_t dims[3] = {0, 0, 0};  // the first three dimensions (enough for every check here)
  int32_t dtype = kOtherType;

  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
};

// A malformed call (bad configuration, shapes, dtypes, out-of-range ids); what() says what.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error(concatenation of parts) unless cond holds.
template <typename... Parts>
inline void check(bool cond, const Parts&... parts) {
  if (cond) return;
  std::ostringstream out;
  (out << ... << parts);
  throw Error(out.str());
}

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

// Per-stage wall time of bert_forward, accumulated when icfg[kProfile] != 0.
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

// Size of the array filled by profile_read: the stage times, the number of calls, then the thread
// pool's statistics (seconds the caller waited for helpers, parallel jobs, chunks run by helpers,
// chunks in total).
constexpr int kProfileSize = kStages + 5;

struct ForwardOutputs {
  const float* logits;  // [logit_rows, num_classes]: [B, C] (classification) or [B * L, C] (QA)
  int64_t logit_rows;
  int64_t num_classes;
  const float* hidden;  // [batch, hidden_len, hidden_size]: the last hidden state
  int64_t hidden_len;   // L, or the tokens kept by the last layer (classification with a length configuration)
  int64_t hidden_size;
};

// The ISA code to run: `isa`, or the best this CPU supports when isa < 0; throws Error for an
// unknown code or one the CPU lacks (0 portable, 1 avx2, 2 avx512-vpopcntdq).
int checked_isa(int isa);

// Thread count: n, or the CPUs this process may run on when n <= 0.
int checked_threads(int n);

// Runs the network on ids / types ([B, L] int64) with the additive key mask `mask` ([B, L] float32).
// The outputs point into a per-thread workspace: valid until the calling thread's next call.
// Throws Error for malformed inputs.
ForwardOutputs bert_forward(const int64_t* ids, const int64_t* types, int64_t batch, int64_t seq_len,
                            const TensorView& mask, const std::vector<TensorView>& W, const std::vector<int>& icfg,
                            const std::vector<float>& fcfg);

// Copies the accumulated profile (kProfileSize doubles, layout above) to out, then resets it.
void profile_read(double* out);

}  // namespace binbert
