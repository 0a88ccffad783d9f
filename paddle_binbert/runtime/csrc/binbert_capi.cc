// C API of paddle_binbert.runtime: the engine's kernels and forward pass as a plain shared library
// (no Paddle), loaded by paddle_binbert/runtime/library.py with ctypes.
//
// Built from three sources: ../../engine/csrc/binbert_kernels.cc (the kernels),
// ../../engine/csrc/binbert_forward.cc (the whole-network forward pass, also used by the Paddle
// operator binbert_bert_forward) and this file, which only converts between C arrays and the
// forward pass's TensorView / exceptions.
//
//   bbrt_abi_version()                           version of this API (the Python side checks it)
//   bbrt_model_create(n, data, numel, ...)       keeps views of the caller's weight arrays -> handle
//   bbrt_model_free(handle)
//   bbrt_forward(handle, ids, types, mask, ...)  one forward pass; logits (and optionally the last
//                                                hidden state) copied into caller buffers
//   bbrt_profile_read(out, n)                    binbert::profile_read
//   bb_best_isa(), bb_max_threads()              from binbert_kernels.cc
//
// Functions returning int return 0 on success, 1 on a malformed call and 2 when an output buffer is
// too small; the message goes to `err` (a caller buffer of `err_cap` bytes, NUL-terminated).
// The caller owns every array and keeps the weight arrays alive as long as the handle.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "binbert_forward.h"
#include "binbert_kernels.h"

namespace {

constexpr int kAbiVersion = 1;

struct Model {
  std::vector<binbert::TensorView> weights;
};

void set_error(char* err, int64_t cap, const std::string& message) {
  if (err == nullptr || cap <= 0) return;
  const size_t n = std::min<size_t>(message.size(), static_cast<size_t>(cap - 1));
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

int bbrt_abi_version() { return kAbiVersion; }

int bbrt_profile_size() { return binbert::kProfileSize; }

// Views of n weight tensors: data[i] (address), numel[i], ndim[i], dims[3 i .. 3 i + 2] (the first
// three dimensions), dtype[i] (binbert::DType). Returns nullptr (and the reason in err) on failure.
void* bbrt_model_create(int64_t n, const void* const* data, const int64_t* numel, const int32_t* ndim,
                        const int64_t* dims, const int32_t* dtype, char* err, int64_t err_cap) {
  try {
    binbert::check(n >= 0 && (n == 0 || (data && numel && ndim && dims && dtype)),
                   "bbrt_model_create: null weight arrays");
    auto* model = new Model();
    model->weights.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      binbert::TensorView& v = model->weights[static_cast<size_t>(i)];
      v.data = data[i];
      v.numel = numel[i];
      v.ndim = ndim[i];
      for (int d = 0; d < 3; ++d) v.dims[d] = dims[3 * i + d];
      v.dtype = dtype[i];
    }
    return model;
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
  } catch (...) {
    set_error(err, err_cap, "bbrt_model_create: unknown error");
  }
  return nullptr;
}

void bbrt_model_free(void* model) { delete static_cast<Model*>(model); }

// One forward pass over ids / types ([batch, seq_len] int64) with the additive key mask ([batch,
// seq_len] float32). icfg / fcfg: see binbert_forward.h (icfg may end with one token budget per
// layer). Copies the logits ([rows, classes]) into `logits` (capacity logits_cap floats) and, when
// `hidden` is not null, the last hidden state ([batch, hidden_len, hidden_size]) into `hidden`.
// out_shape receives [rows, classes, hidden_len, hidden_size].
int bbrt_forward(const void* model, const int64_t* ids, const int64_t* types, const float* mask, int64_t batch,
                 int64_t seq_len, const int32_t* icfg, int32_t n_icfg, const float* fcfg, int32_t n_fcfg,
                 float* logits, int64_t logits_cap, float* hidden, int64_t hidden_cap, int64_t* out_shape, char* err,
                 int64_t err_cap) {
  try {
    binbert::check(model != nullptr, "bbrt_forward: null model handle");
    binbert::check(n_icfg >= 0 && n_fcfg >= 0 && (icfg || n_icfg == 0) && (fcfg || n_fcfg == 0) && out_shape,
                   "bbrt_forward: null configuration or output arrays");
    const Model& m = *static_cast<const Model*>(model);
    binbert::TensorView mask_view;
    mask_view.data = mask;
    mask_view.numel = batch * seq_len;
    mask_view.ndim = 2;
    mask_view.dims[0] = batch;
    mask_view.dims[1] = seq_len;
    mask_view.dtype = binbert::kFloat32;
    const std::vector<int> ic(icfg, icfg + n_icfg);
    const std::vector<float> fc(fcfg, fcfg + n_fcfg);
    const binbert::ForwardOutputs out = binbert::bert_forward(ids, types, batch, seq_len, mask_view, m.weights, ic, fc);
    out_shape[0] = out.logit_rows;
    out_shape[1] = out.num_classes;
    out_shape[2] = out.hidden_len;
    out_shape[3] = out.hidden_size;
    const int64_t n_logits = out.logit_rows * out.num_classes;
    const int64_t n_hidden = batch * out.hidden_len * out.hidden_size;
    if (logits == nullptr || n_logits > logits_cap || (hidden != nullptr && n_hidden > hidden_cap)) {
      set_error(err, err_cap,
                "bbrt_forward: output buffer too small (logits need " + std::to_string(n_logits) + " floats, have " +
                    std::to_string(logits_cap) + "; hidden state needs " + std::to_string(n_hidden) + ", have " +
                    std::to_string(hidden_cap) + ")");
      return 2;
    }
    std::copy(out.logits, out.logits + n_logits, logits);
    if (hidden != nullptr) std::copy(out.hidden, out.hidden + n_hidden, hidden);
    return 0;
  } catch (const std::bad_alloc&) {
    set_error(err, err_cap, "bbrt_forward: out of memory");
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
  } catch (...) {
    set_error(err, err_cap, "bbrt_forward: unknown error");
  }
  return 1;
}

// Copies binbert::profile_read (bbrt_profile_size() doubles) to out; 2 if n is too small.
int bbrt_profile_read(double* out, int32_t n) {
  if (out == nullptr || n < binbert::kProfileSize) return 2;
  binbert::profile_read(out);
  return 0;
}

}  // extern "C"
