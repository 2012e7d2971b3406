// Fused CPU kernels for training the ERNIE encoder: dropout, layer norm, exact GELU, the masked
// attention softmax and bias add, forward and backward, float32, multi-threaded with OpenMP; and
// the matrix products, through oneDNN, in float32 or bfloat16 (float32 in and out).
//
// Paddle 3.3's own CPU kernels for these ops are single-threaded or slow in the backward pass
// (a column reduction over the rows, a per-element std::mt19937 draw), and together cost a
// third of a pre-training step on the CPU; see ernie/kernels.py for the figures.
//
// Dropout draws its keep decisions from Philox4x32-10 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011), a counter-based generator: the decision for element i is a pure
// function of (key, i), so the result does not depend on the number of threads, and the AVX2
// path and the portable path agree bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include <dlfcn.h>
#include <omp.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "paddle/extension.h"

// glibc's libmvec has vectorised erff and expf (erff since glibc 2.35), but <math.h> declares
// them only under -ffast-math, which would change every other kernel here; declared here, the
// loops below call them eight lanes at a time.
#if defined(__x86_64__) && defined(__GLIBC__) && __GLIBC_PREREQ(2, 35)
extern "C" {
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
float expf(float);
}
#endif

namespace {

// ---------------------------------------------------------------------------------------------
// Philox4x32-10

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

// Elements are taken in groups of 32: element 32 g + 8 w + l holds word w of the Philox block
// whose counter is (8 g + l) as a 64-bit number in the first two counter words (low word first),
// the other two words zero. Eight consecutive blocks fill one group, so the AVX2 path computes a
// group with one block per vector lane.
constexpr int64_t kLanes = 8;
constexpr int64_t kGroup = 4 * kLanes;

void PhiloxBlock(uint64_t counter, uint32_t k0, uint32_t k1, uint32_t out[4]) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  for (int r = 0; r < kPhiloxRounds; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = static_cast<uint32_t>(p1);
    c2 = n2;
    c3 = static_cast<uint32_t>(p0);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// Random words for elements [32 g, 32 g + n) of group g, n <= 32, in element order.
void PhiloxGroupPortable(int64_t g, int64_t n, uint32_t k0, uint32_t k1, uint32_t words[kGroup]) {
  for (int64_t l = 0; l < kLanes; ++l) {
    uint32_t block[4];
    PhiloxBlock(static_cast<uint64_t>(g) * kLanes + l, k0, k1, block);
    for (int64_t w = 0; w < 4; ++w) {
      if (w * kLanes + l < n) words[w * kLanes + l] = block[w];
    }
  }
}

#if defined(__AVX2__)
// High and low 32 bits of a * m in each of the eight lanes.
inline void MulHiLo(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// The 32 words of a whole group g, as four vectors of eight lanes (vector w = words 8 w ... 8 w + 7).
inline void PhiloxGroupAvx2(int64_t g, uint32_t k0, uint32_t k1, __m256i words[4]) {
  const uint64_t first = static_cast<uint64_t>(g) * kLanes;  // no carry inside a group: first % 8 == 0
  __m256i c0 = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(first))));
  __m256i c1 = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(first >> 32)));
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  const __m256i m0 = _mm256_set1_epi32(static_cast<int32_t>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int32_t>(kPhiloxM1));
  for (int r = 0; r < kPhiloxRounds; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    MulHiLo(c0, m0, &hi0, &lo0);
    MulHiLo(c2, m1, &hi1, &lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int32_t>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int32_t>(k1)));
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  words[0] = c0;
  words[1] = c1;
  words[2] = c2;
  words[3] = c3;
}
#endif

// A word keeps its element when it is at least this: P(drop) = threshold / 2^32.
uint32_t DropThreshold(float p) {
  return static_cast<uint32_t>(std::llround(static_cast<double>(p) * 4294967296.0));
}

void KeepPortable(const float* x, int64_t g, int64_t n, uint32_t k0, uint32_t k1, uint32_t threshold,
                  float scale, float* out, uint8_t* mask) {
  uint32_t words[kGroup];
  PhiloxGroupPortable(g, n, k0, k1, words);
  for (int64_t j = 0; j < n; ++j) {
    const bool keep = words[j] >= threshold;
    mask[j] = keep;
    out[j] = keep ? x[j] * scale : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

void CheckFloat32(const paddle::Tensor& t, const char* op, const char* name) {
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, op, ": ", name, " must be float32");
  PD_CHECK(t.is_cpu(), op, ": ", name, " must be on the CPU");
}

int64_t LastDim(const paddle::Tensor& t) {
  const auto& shape = t.shape();
  return shape.empty() ? 1 : shape.back();
}

// Column sums of a [rows, cols] row-major matrix into `out`, with per-thread partial sums added
// in thread order (the same result on every run with the same number of threads).
void ColumnSums(const float* a, int64_t rows, int64_t cols, float* out) {
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * cols, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    float* mine = partial.data() + static_cast<int64_t>(omp_get_thread_num()) * cols;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = a + r * cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) mine[j] += row[j];
    }
  }
  std::fill(out, out + cols, 0.0f);
  for (int t = 0; t < threads; ++t) {
    const float* p = partial.data() + static_cast<int64_t>(t) * cols;
    for (int64_t j = 0; j < cols; ++j) out[j] += p[j];
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dropout (upscale in train): out = x * keep / (1 - p); `seed` holds the two 32-bit key words.

std::vector<paddle::Tensor> DropoutForward(const paddle::Tensor& x, const paddle::Tensor& seed, float p) {
  CheckFloat32(x, "ernie_dropout", "x");
  PD_CHECK(seed.dtype() == paddle::DataType::INT64 && seed.numel() == 2, "ernie_dropout: seed must be int64 [2]");
  PD_CHECK(p >= 0.0f && p < 1.0f, "ernie_dropout: p must be in [0, 1), got ", p);
  auto out = paddle::empty_like(x);
  auto mask = paddle::empty(x.shape(), paddle::DataType::UINT8, x.place());
  const int64_t* key = seed.data<int64_t>();
  const uint32_t k0 = static_cast<uint32_t>(key[0]), k1 = static_cast<uint32_t>(key[1]);
  const uint32_t threshold = DropThreshold(p);
  const float scale = 1.0f / (1.0f - p);
  const float* xp = x.data<float>();
  float* op = out.data<float>();
  uint8_t* mp = mask.data<uint8_t>();
  const int64_t n = x.numel(), groups = n / kGroup;
#if defined(__AVX2__)
  const __m256i vthreshold = _mm256_set1_epi32(static_cast<int32_t>(threshold));
#endif
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t base = g * kGroup;
#if defined(__AVX2__)
    __m256i words[4];
    PhiloxGroupAvx2(g, k0, k1, words);
    for (int w = 0; w < 4; ++w) {
      // unsigned word >= threshold  <=>  max(word, threshold) == word
      const __m256i keep = _mm256_cmpeq_epi32(_mm256_max_epu32(words[w], vthreshold), words[w]);
      const int64_t at = base + w * kLanes;
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xp + at), _mm256_set1_ps(scale));
      _mm256_storeu_ps(op + at, _mm256_and_ps(v, _mm256_castsi256_ps(keep)));
      // lanes are all-ones or zero: keep the low byte of each, as 0 or 1
      const __m256i bytes = _mm256_and_si256(keep, _mm256_set1_epi32(1));
      const __m128i packed16 = _mm_packus_epi32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(mp + at), _mm_packus_epi16(packed16, packed16));
    }
#else
    KeepPortable(xp + base, g, kGroup, k0, k1, threshold, scale, op + base, mp + base);
#endif
  }
  const int64_t tail = n - groups * kGroup;
  if (tail > 0) {
    const int64_t base = groups * kGroup;
    KeepPortable(xp + base, groups, tail, k0, k1, threshold, scale, op + base, mp + base);
  }
  return {out, mask};
}

std::vector<paddle::Tensor> DropoutBackward(const paddle::Tensor& mask, const paddle::Tensor& dout, float p) {
  CheckFloat32(dout, "ernie_dropout_grad", "out@GRAD");
  auto dx = paddle::empty_like(dout);
  const float scale = 1.0f / (1.0f - p);
  const uint8_t* mp = mask.data<uint8_t>();
  const float* dp = dout.data<float>();
  float* xp = dx.data<float>();
  const int64_t n = dout.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) xp[i] = mp[i] ? dp[i] * scale : 0.0f;
  return {dx};
}

std::vector<std::vector<int64_t>> DropoutShape(const std::vector<int64_t>& x, const std::vector<int64_t>&) {
  return {x, x};
}

std::vector<paddle::DataType> DropoutDtype(const paddle::DataType& x, const paddle::DataType&) {
  return {x, paddle::DataType::UINT8};
}

PD_BUILD_OP(ernie_dropout)
    .Inputs({"X", "Seed"})
    .Outputs({"Out", "Mask"})
    .Attrs({"p: float"})
    .SetKernelFn(PD_KERNEL(DropoutForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DropoutShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DropoutDtype));

std::vector<std::vector<int64_t>> DropoutGradShape(const std::vector<int64_t>&, const std::vector<int64_t>& dout) {
  return {dout};
}

std::vector<paddle::DataType> DropoutGradDtype(const paddle::DataType&, const paddle::DataType& dout) {
  return {dout};
}

PD_BUILD_GRAD_OP(ernie_dropout)
    .Inputs({"Mask", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"p: float"})
    .SetKernelFn(PD_KERNEL(DropoutBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(DropoutGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DropoutGradDtype));

// ---------------------------------------------------------------------------------------------
// Layer norm over the last axis, with scale and bias; also returns each row's mean and
// 1 / sqrt(variance + epsilon) for the backward pass.

std::vector<paddle::Tensor> LayerNormForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                             const paddle::Tensor& bias, float epsilon) {
  CheckFloat32(x, "ernie_layer_norm", "x");
  CheckFloat32(scale, "ernie_layer_norm", "scale");
  CheckFloat32(bias, "ernie_layer_norm", "bias");
  const int64_t h = LastDim(x), rows = x.numel() / h;
  PD_CHECK(scale.numel() == h && bias.numel() == h, "ernie_layer_norm: scale and bias must have ", h, " elements");
  const std::vector<int64_t> shape = x.shape();
  const std::vector<int64_t> row_shape(shape.begin(), shape.end() - 1);
  auto out = paddle::empty_like(x);
  auto mean = paddle::empty(row_shape, paddle::DataType::FLOAT32, x.place());
  auto rstd = paddle::empty(row_shape, paddle::DataType::FLOAT32, x.place());
  const float *xp = x.data<float>(), *g = scale.data<float>(), *b = bias.data<float>();
  float *op = out.data<float>(), *mp = mean.data<float>(), *rp = rstd.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xp + r * h;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < h; ++j) sum += row[j];
    const float mu = sum / h;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < h; ++j) sq += (row[j] - mu) * (row[j] - mu);
    const float inv = 1.0f / std::sqrt(sq / h + epsilon);
    mp[r] = mu;
    rp[r] = inv;
    float* o = op + r * h;
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) o[j] = (row[j] - mu) * inv * g[j] + b[j];
  }
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                              const paddle::Tensor& mean, const paddle::Tensor& rstd,
                                              const paddle::Tensor& dout, float) {
  CheckFloat32(dout, "ernie_layer_norm_grad", "out@GRAD");
  const int64_t h = LastDim(x), rows = x.numel() / h;
  auto dx = paddle::empty_like(x);
  auto dscale = paddle::empty_like(scale);
  auto dbias = paddle::empty_like(scale);
  const float *xp = x.data<float>(), *g = scale.data<float>(), *mp = mean.data<float>(), *rp = rstd.data<float>();
  const float* dp = dout.data<float>();
  float* dxp = dx.data<float>();
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * 2 * h, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    float* dg = partial.data() + static_cast<int64_t>(omp_get_thread_num()) * 2 * h;
    float* db = dg + h;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float *row = xp + r * h, *dy = dp + r * h;
      const float mu = mp[r], inv = rp[r];
      float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
      for (int64_t j = 0; j < h; ++j) {
        const float xhat = (row[j] - mu) * inv, dxhat = dy[j] * g[j];
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
        dg[j] += dy[j] * xhat;
        db[j] += dy[j];
      }
      const float a = sum_dxhat / h, c = sum_dxhat_xhat / h;
      float* out = dxp + r * h;
#pragma omp simd
      for (int64_t j = 0; j < h; ++j) {
        const float xhat = (row[j] - mu) * inv;
        out[j] = inv * (dy[j] * g[j] - a - xhat * c);
      }
    }
  }
  float *dgp = dscale.data<float>(), *dbp = dbias.data<float>();
  std::fill(dgp, dgp + h, 0.0f);
  std::fill(dbp, dbp + h, 0.0f);
  for (int t = 0; t < threads; ++t) {
    const float* p = partial.data() + static_cast<int64_t>(t) * 2 * h;
    for (int64_t j = 0; j < h; ++j) {
      dgp[j] += p[j];
      dbp[j] += p[h + j];
    }
  }
  return {dx, dscale, dbias};
}

std::vector<std::vector<int64_t>> LayerNormShape(const std::vector<int64_t>& x, const std::vector<int64_t>&,
                                                 const std::vector<int64_t>&) {
  std::vector<int64_t> rows(x.begin(), x.end() - 1);
  return {x, rows, rows};
}

std::vector<paddle::DataType> LayerNormDtype(const paddle::DataType& x, const paddle::DataType&,
                                             const paddle::DataType&) {
  return {x, x, x};
}

PD_BUILD_OP(ernie_layer_norm)
    .Inputs({"X", "Scale", "Bias"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(LayerNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LayerNormShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayerNormDtype));

std::vector<std::vector<int64_t>> LayerNormGradShape(const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                                     const std::vector<int64_t>&, const std::vector<int64_t>&,
                                                     const std::vector<int64_t>&) {
  return {x, scale, scale};
}

std::vector<paddle::DataType> LayerNormGradDtype(const paddle::DataType& x, const paddle::DataType& scale,
                                                 const paddle::DataType&, const paddle::DataType&,
                                                 const paddle::DataType&) {
  return {x, scale, scale};
}

PD_BUILD_GRAD_OP(ernie_layer_norm)
    .Inputs({"X", "Scale", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(LayerNormGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayerNormGradDtype));

// ---------------------------------------------------------------------------------------------
// GELU, exact (erf) form: x * Phi(x).

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

std::vector<paddle::Tensor> GeluForward(const paddle::Tensor& x) {
  CheckFloat32(x, "ernie_gelu", "x");
  auto out = paddle::empty_like(x);
  const float* xp = x.data<float>();
  float* op = out.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) op[i] = 0.5f * xp[i] * (1.0f + erff(xp[i] * kSqrtHalf));
  return {out};
}

std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& dout) {
  CheckFloat32(dout, "ernie_gelu_grad", "out@GRAD");
  auto dx = paddle::empty_like(x);
  const float *xp = x.data<float>(), *dp = dout.data<float>();
  float* dxp = dx.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = xp[i];
    const float cdf = 0.5f * (1.0f + erff(v * kSqrtHalf));
    dxp[i] = dp[i] * (cdf + v * kInvSqrt2Pi * expf(-0.5f * v * v));
  }
  return {dx};
}

PD_BUILD_OP(ernie_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward));

PD_BUILD_GRAD_OP(ernie_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));

// ---------------------------------------------------------------------------------------------
// Attention softmax with the additive padding mask: out = softmax(scores + bias) over the keys,
// scores [batch, heads, queries, keys], bias one row of [keys] per batch entry ([batch, 1, 1, keys]).
// The mask is data, so only the scores get a gradient.

std::vector<paddle::Tensor> MaskedSoftmaxForward(const paddle::Tensor& scores, const paddle::Tensor& bias) {
  CheckFloat32(scores, "ernie_masked_softmax", "scores");
  CheckFloat32(bias, "ernie_masked_softmax", "bias");
  const auto& shape = scores.shape();
  PD_CHECK(shape.size() == 4, "ernie_masked_softmax: scores must be [batch, heads, queries, keys]");
  const int64_t keys = shape[3], rows_per_batch = shape[1] * shape[2], rows = scores.numel() / keys;
  PD_CHECK(bias.numel() == shape[0] * keys, "ernie_masked_softmax: bias must hold ", shape[0] * keys,
           " values ([batch, 1, 1, keys]), holds ", bias.numel());
  auto out = paddle::empty_like(scores);
  const float *sp = scores.data<float>(), *bp = bias.data<float>();
  float* op = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *s = sp + r * keys, *b = bp + (r / rows_per_batch) * keys;
    float* o = op + r * keys;
    float top = -INFINITY;
    for (int64_t j = 0; j < keys; ++j) top = std::max(top, s[j] + b[j]);
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < keys; ++j) {
      o[j] = expf(s[j] + b[j] - top);
      total += o[j];
    }
    const float inv = 1.0f / total;
#pragma omp simd
    for (int64_t j = 0; j < keys; ++j) o[j] *= inv;
  }
  return {out};
}

std::vector<paddle::Tensor> MaskedSoftmaxBackward(const paddle::Tensor& out, const paddle::Tensor& dout) {
  CheckFloat32(dout, "ernie_masked_softmax_grad", "out@GRAD");
  const int64_t keys = LastDim(out), rows = out.numel() / keys;
  auto dx = paddle::empty_like(out);
  const float *op = out.data<float>(), *dp = dout.data<float>();
  float* xp = dx.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float *y = op + r * keys, *dy = dp + r * keys;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < keys; ++j) dot += y[j] * dy[j];
    float* d = xp + r * keys;
#pragma omp simd
    for (int64_t j = 0; j < keys; ++j) d[j] = y[j] * (dy[j] - dot);
  }
  return {dx};
}

std::vector<std::vector<int64_t>> MaskedSoftmaxShape(const std::vector<int64_t>& scores, const std::vector<int64_t>&) {
  return {scores};
}

std::vector<paddle::DataType> MaskedSoftmaxDtype(const paddle::DataType& scores, const paddle::DataType&) {
  return {scores};
}

std::vector<std::vector<int64_t>> MaskedSoftmaxGradShape(const std::vector<int64_t>& out, const std::vector<int64_t>&) {
  return {out};
}

std::vector<paddle::DataType> MaskedSoftmaxGradDtype(const paddle::DataType& out, const paddle::DataType&) {
  return {out};
}

PD_BUILD_OP(ernie_masked_softmax)
    .Inputs({"Scores", "Bias"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(MaskedSoftmaxForward))
    .SetInferShapeFn(PD_INFER_SHAPE(MaskedSoftmaxShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(MaskedSoftmaxDtype));

PD_BUILD_GRAD_OP(ernie_masked_softmax)
    .Inputs({"Out", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Scores")})
    .SetKernelFn(PD_KERNEL(MaskedSoftmaxBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(MaskedSoftmaxGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(MaskedSoftmaxGradDtype));

// ---------------------------------------------------------------------------------------------
// Bias add over the last axis; the bias gradient is a column sum of the output gradient.

std::vector<paddle::Tensor> BiasAddForward(const paddle::Tensor& x, const paddle::Tensor& bias) {
  CheckFloat32(x, "ernie_bias_add", "x");
  CheckFloat32(bias, "ernie_bias_add", "bias");
  const int64_t h = LastDim(x), rows = x.numel() / h;
  PD_CHECK(bias.numel() == h, "ernie_bias_add: bias must have ", h, " elements, has ", bias.numel());
  auto out = paddle::empty_like(x);
  const float *xp = x.data<float>(), *b = bias.data<float>();
  float* op = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) op[r * h + j] = xp[r * h + j] + b[j];
  }
  return {out};
}

std::vector<paddle::Tensor> BiasAddBackward(const paddle::Tensor& bias, const paddle::Tensor& dout) {
  CheckFloat32(dout, "ernie_bias_add_grad", "out@GRAD");
  const int64_t h = LastDim(dout), rows = dout.numel() / h;
  auto dx = paddle::empty_like(dout);
  auto dbias = paddle::empty_like(bias);
  const float* dp = dout.data<float>();
  float* dxp = dx.data<float>();
  const int64_t n = dout.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dxp[i] = dp[i];
  ColumnSums(dp, rows, h, dbias.data<float>());
  return {dx, dbias};
}

std::vector<std::vector<int64_t>> BiasAddShape(const std::vector<int64_t>& x, const std::vector<int64_t>&) {
  return {x};
}

std::vector<paddle::DataType> BiasAddDtype(const paddle::DataType& x, const paddle::DataType&) { return {x}; }

PD_BUILD_OP(ernie_bias_add)
    .Inputs({"X", "Bias"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(BiasAddForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BiasAddShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BiasAddDtype));

std::vector<std::vector<int64_t>> BiasAddGradShape(const std::vector<int64_t>& bias, const std::vector<int64_t>& dout) {
  return {dout, bias};
}

std::vector<paddle::DataType> BiasAddGradDtype(const paddle::DataType& bias, const paddle::DataType& dout) {
  return {dout, bias};
}

PD_BUILD_GRAD_OP(ernie_bias_add)
    .Inputs({"Bias", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Bias")})
    .SetKernelFn(PD_KERNEL(BiasAddBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(BiasAddGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BiasAddGradDtype));

// ---------------------------------------------------------------------------------------------
// Matrix product, float32 in and out: Out = X @ Y, or X @ Y^T with transpose_y. X is [..., M, K];
// Y is a weight [K, N] ([N, K] transposed) shared by every row of X, or a batch of matrices with
// X's leading dimensions (attention's scores and context). The products run in oneDNN's GEMM,
// whose library Paddle's CPU build has already loaded: `dnnl_sgemm` in float32, or with `bf16`
// `dnnl_gemm_bf16bf16f32`, both operands rounded to bfloat16 (nearest, ties to even) on entry and
// float32 accumulation (AMX tiles where the CPU has them, AVX512_BF16 dot products where it has
// those). Everything else stays float32: the weights the optimizer updates, the gradients.
//
// oneDNN's threads are this library's (GNU OpenMP), where Paddle's own matmul calls MKL, whose
// Intel OpenMP threads wait spinning after each call while the fused kernels want the cores.

using SgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t);
using GemmBf16Fn = int (*)(char, char, int64_t, int64_t, int64_t, float, const uint16_t*, int64_t,
                           const uint16_t*, int64_t, float, float*, int64_t);

// A function of Paddle's own copy of oneDNN (found by its soname: RTLD_NOLOAD, never a second one).
void* DnnlSymbol(const char* name) {
  void* lib = dlopen("libdnnl.so.3", RTLD_NOW | RTLD_NOLOAD);
  void* fn = lib ? dlsym(lib, name) : nullptr;
  PD_CHECK(fn != nullptr, "ernie_matmul: oneDNN's ", name, " is not loaded in this process "
           "(Paddle's CPU build brings libdnnl.so.3)");
  return fn;
}

// An operand as the GEMM takes it: the float32 tensor, or its copy rounded to bfloat16.
struct Operand {
  const float* f32;
  std::unique_ptr<uint16_t[]> bf16;
};

// float32 -> bfloat16, round to nearest even; a NaN stays a (quiet) NaN. The buffer is left
// uninitialised before it is written (a std::vector would zero it first: one more pass).
Operand Prepare(const paddle::Tensor& t, bool bf16) {
  Operand op{t.data<float>(), nullptr};
  if (!bf16) return op;
  const int64_t n = t.numel();
  op.bf16.reset(new uint16_t[n]);
  const float* src = op.f32;
  uint16_t* dst = op.bf16.get();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, sizeof(u));
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    dst[i] = nan ? static_cast<uint16_t>((u >> 16) | 0x40u) : static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return op;
}

// The dimensions of X @ op(Y): `batch` products of [m, k] by [k, n]; `batch` is 1 where Y is a
// weight (X's leading dimensions folded into m).
struct MatmulDims {
  int64_t batch, m, k, n;
};

MatmulDims Dims(const std::vector<int64_t>& x, const std::vector<int64_t>& y, bool transpose_y, const char* op) {
  PD_CHECK(x.size() >= 2 && y.size() >= 2, op, ": X and Y need at least 2 dimensions");
  const int64_t k = x.back();
  const int64_t yk = transpose_y ? y[y.size() - 1] : y[y.size() - 2];
  const int64_t n = transpose_y ? y[y.size() - 2] : y[y.size() - 1];
  PD_CHECK(k == yk, op, ": X's last dimension ", k, " does not match Y's ", yk);
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  if (y.size() == 2) return {1, rows, k, n};
  PD_CHECK(y.size() == x.size() && std::equal(x.begin(), x.end() - 2, y.begin()), op,
           ": a batched Y must have X's leading dimensions");
  const int64_t m = x[x.size() - 2];
  return {rows / m, m, k, n};
}

// C = op_a(A) @ op_b(B) (+ C with beta 1), row-major, float32 out, each operand from `offset`
// elements into its buffer with its leading dimension: oneDNN's status.
int Gemm(bool bf16, char ta, char tb, int64_t m, int64_t n, int64_t k, const Operand& a, int64_t a_offset,
         int64_t lda, const Operand& b, int64_t b_offset, int64_t ldb, float beta, float* c, int64_t ldc) {
  static const auto sgemm = reinterpret_cast<SgemmFn>(DnnlSymbol("dnnl_sgemm"));
  static const auto gemm_bf16 = reinterpret_cast<GemmBf16Fn>(DnnlSymbol("dnnl_gemm_bf16bf16f32"));
  return bf16 ? gemm_bf16(ta, tb, m, n, k, 1.0f, a.bf16.get() + a_offset, lda, b.bf16.get() + b_offset, ldb, beta, c, ldc)
              : sgemm(ta, tb, m, n, k, 1.0f, a.f32 + a_offset, lda, b.f32 + b_offset, ldb, beta, c, ldc);
}

// oneDNN's matmul primitive, bfloat16 operands and float32 out, where oneDNN runs it on AMX tiles,
// for the single products whose first operand is not transposed and whose inner dimension is not
// much longer than the output's sides: the encoder's forward products and input gradients.
// Measured inside a pre-training step on 2 AMX cores (Xeon, oneDNN 3.6), it runs the encoder's
// [2048, 256|1024] products 1.1-1.5x faster than `dnnl_gemm_bf16bf16f32`, which packs its operands
// on every call: 4-8% of a bf16 step, tiny to base. The GEMM API keeps the rest: the weight
// gradients' X^T @ dOut (faster there by 1.2-1.4x), the tied output layer's input gradient, whose
// inner dimension is the vocabulary (1.9x), attention's per-head products, and every product on a
// CPU without AMX (AVX512_BF16 alone: the primitive 1-2% slower).
// oneDNN's C API is declared here (Paddle's wheel ships no oneDNN header) and resolved from
// Paddle's own library as the GEMM functions are.
using dnnl_handle = void*;
struct DnnlExecArg {
  int arg;
  dnnl_handle memory;
};
constexpr int kDnnlBf16 = 2, kDnnlF32 = 3, kDnnlCpu = 1, kDnnlStreamInOrder = 1, kDnnlQueryImplInfo = 8;
constexpr int kDnnlArgSrc = 1, kDnnlArgDst = 17, kDnnlArgWeights = 33;

class MatmulPrimitives {
 public:
  // C[m, n] (+)= A @ op_b(B) with A [m, k] (row stride lda), B [k, n] or [n, k] with `tb`,
  // C's row stride ldc: false where oneDNN would not run it on AMX tiles (the caller then runs
  // the GEMM API).
  bool Run(char tb, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b,
           int64_t ldb, bool accumulate, float* c, int64_t ldc) {
    std::lock_guard<std::mutex> lock(mutex_);  // one product at a time: each runs on every core
    const Entry& entry = Find({tb, m, n, k, lda, ldb, ldc, accumulate});
    if (entry.primitive == nullptr) return false;
    dnnl_handle memories[3] = {nullptr, nullptr, nullptr};
    const void* data[3] = {a, b, c};
    int status = 0;
    for (int i = 0; i < 3 && status == 0; ++i)
      status = api_.memory_create(&memories[i], entry.shapes.md[i], engine_, const_cast<void*>(data[i]));
    if (status == 0) {
      DnnlExecArg args[3] = {{kDnnlArgSrc, memories[0]}, {kDnnlArgWeights, memories[1]}, {kDnnlArgDst, memories[2]}};
      status = api_.primitive_execute(entry.primitive, stream_, 3, args);
      if (status == 0) status = api_.stream_wait(stream_);
    }
    for (dnnl_handle memory : memories)
      if (memory != nullptr) api_.memory_destroy(memory);
    PD_CHECK(status == 0, "ernie_matmul: oneDNN's matmul primitive failed with status ", status);
    return true;
  }

  static MatmulPrimitives& Instance() {
    static MatmulPrimitives instance;
    return instance;
  }

 private:
  struct Api {
    int (*engine_create)(dnnl_handle*, int, size_t);
    int (*stream_create)(dnnl_handle*, dnnl_handle, unsigned);
    int (*md_create)(dnnl_handle*, int, const int64_t*, int, const int64_t*);
    int (*md_destroy)(dnnl_handle);
    int (*attr_create)(dnnl_handle*);
    int (*attr_destroy)(dnnl_handle);
    int (*post_ops_create)(dnnl_handle*);
    int (*post_ops_destroy)(dnnl_handle);
    int (*post_ops_append_sum)(dnnl_handle, float, int32_t, int);
    int (*attr_set_post_ops)(dnnl_handle, dnnl_handle);
    int (*matmul_pd_create)(dnnl_handle*, dnnl_handle, dnnl_handle, dnnl_handle, dnnl_handle, dnnl_handle, dnnl_handle);
    int (*pd_query)(dnnl_handle, int, int, void*);
    int (*pd_destroy)(dnnl_handle);
    int (*primitive_create)(dnnl_handle*, dnnl_handle);
    int (*primitive_destroy)(dnnl_handle);
    int (*memory_create)(dnnl_handle*, dnnl_handle, dnnl_handle, void*);
    int (*memory_destroy)(dnnl_handle);
    int (*primitive_execute)(dnnl_handle, dnnl_handle, int, const DnnlExecArg*);
    int (*stream_wait)(dnnl_handle);
  };

  struct Key {
    char tb;
    int64_t m, n, k, lda, ldb, ldc;
    bool accumulate;
    bool operator<(const Key& o) const {
      return std::tie(tb, m, n, k, lda, ldb, ldc, accumulate) < std::tie(o.tb, o.m, o.n, o.k, o.lda, o.ldb, o.ldc, o.accumulate);
    }
  };

  // The memory descriptors of A (bf16), B (bf16) and C (f32), row-major with the given strides.
  struct Shapes {
    dnnl_handle md[3] = {nullptr, nullptr, nullptr};
    void Destroy(const Api& api) const {
      for (dnnl_handle d : md)
        if (d != nullptr) api.md_destroy(d);
    }
  };

  struct Entry {
    dnnl_handle primitive;  // nullptr: the GEMM API's product
    Shapes shapes;
  };

  template <typename Fn>
  static void Resolve(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(DnnlSymbol(name));
  }

  MatmulPrimitives() {
    Resolve(api_.engine_create, "dnnl_engine_create");
    Resolve(api_.stream_create, "dnnl_stream_create");
    Resolve(api_.md_create, "dnnl_memory_desc_create_with_strides");
    Resolve(api_.md_destroy, "dnnl_memory_desc_destroy");
    Resolve(api_.attr_create, "dnnl_primitive_attr_create");
    Resolve(api_.attr_destroy, "dnnl_primitive_attr_destroy");
    Resolve(api_.post_ops_create, "dnnl_post_ops_create");
    Resolve(api_.post_ops_destroy, "dnnl_post_ops_destroy");
    Resolve(api_.post_ops_append_sum, "dnnl_post_ops_append_sum");
    Resolve(api_.attr_set_post_ops, "dnnl_primitive_attr_set_post_ops");
    Resolve(api_.matmul_pd_create, "dnnl_matmul_primitive_desc_create");
    Resolve(api_.pd_query, "dnnl_primitive_desc_query");
    Resolve(api_.pd_destroy, "dnnl_primitive_desc_destroy");
    Resolve(api_.primitive_create, "dnnl_primitive_create");
    Resolve(api_.primitive_destroy, "dnnl_primitive_destroy");
    Resolve(api_.memory_create, "dnnl_memory_create");
    Resolve(api_.memory_destroy, "dnnl_memory_destroy");
    Resolve(api_.primitive_execute, "dnnl_primitive_execute");
    Resolve(api_.stream_wait, "dnnl_stream_wait");
    PD_CHECK(api_.engine_create(&engine_, kDnnlCpu, 0) == 0 && api_.stream_create(&stream_, engine_, kDnnlStreamInOrder) == 0,
             "ernie_matmul: oneDNN's CPU engine could not be created");
  }

  Shapes ShapesOf(const Key& key) const {
    Shapes s;
    const int64_t a_dims[2] = {key.m, key.k}, a_strides[2] = {key.lda, 1};
    const int64_t b_dims[2] = {key.k, key.n};
    const int64_t b_strides[2] = {key.tb == 'T' ? 1 : key.ldb, key.tb == 'T' ? key.ldb : 1};
    const int64_t c_dims[2] = {key.m, key.n}, c_strides[2] = {key.ldc, 1};
    const int status = api_.md_create(&s.md[0], 2, a_dims, kDnnlBf16, a_strides) |
                       api_.md_create(&s.md[1], 2, b_dims, kDnnlBf16, b_strides) |
                       api_.md_create(&s.md[2], 2, c_dims, kDnnlF32, c_strides);
    if (status != 0) {
      s.Destroy(api_);
      PD_CHECK(false, "ernie_matmul: oneDNN refused a memory descriptor (status ", status, ")");
    }
    return s;
  }

  // The primitive for `key` and its operands' descriptors, made once (no primitive where
  // oneDNN's implementation is not AMX's), under the caller's lock. The number kept is bounded:
  // batches of varying length make new shapes, and oneDNN's own primitive cache makes a dropped
  // one cheap to make again.
  const Entry& Find(const Key& key) {
    const auto found = entries_.find(key);
    if (found != entries_.end()) return found->second;
    if (entries_.size() >= kKept) {
      for (auto& kept : entries_) {
        if (kept.second.primitive != nullptr) api_.primitive_destroy(kept.second.primitive);
        kept.second.shapes.Destroy(api_);
      }
      entries_.clear();
    }
    const Shapes shapes = ShapesOf(key);
    dnnl_handle attr = nullptr, post_ops = nullptr, pd = nullptr, primitive = nullptr;
    int status = api_.attr_create(&attr);
    if (status == 0 && key.accumulate) {
      status = api_.post_ops_create(&post_ops);
      if (status == 0) status = api_.post_ops_append_sum(post_ops, 1.0f, 0, kDnnlF32);
      if (status == 0) status = api_.attr_set_post_ops(attr, post_ops);
    }
    if (status == 0) status = api_.matmul_pd_create(&pd, engine_, shapes.md[0], shapes.md[1], nullptr, shapes.md[2], attr);
    const char* impl = nullptr;
    if (status == 0 && api_.pd_query(pd, kDnnlQueryImplInfo, 0, &impl) == 0 && impl != nullptr &&
        std::strstr(impl, "amx") != nullptr)
      status = api_.primitive_create(&primitive, pd);
    if (pd != nullptr) api_.pd_destroy(pd);
    if (post_ops != nullptr) api_.post_ops_destroy(post_ops);
    if (attr != nullptr) api_.attr_destroy(attr);
    if (status != 0) primitive = nullptr;
    return entries_[key] = Entry{primitive, shapes};
  }

  static constexpr size_t kKept = 256;
  Api api_{};
  dnnl_handle engine_ = nullptr, stream_ = nullptr;
  std::mutex mutex_;
  std::map<Key, Entry> entries_;
};

// `product(i)` (a Gemm's status) for i in [0, count): one product a thread (oneDNN runs
// single-threaded inside a parallel region); a single product runs on all threads inside oneDNN.
template <typename Product>
void Products(int64_t count, const char* op, Product product) {
  int status = 0;
  if (count == 1) {
    status = product(0);
  } else {
#pragma omp parallel for schedule(static) reduction(| : status)
    for (int64_t i = 0; i < count; ++i) status |= product(i);
  }
  PD_CHECK(status == 0, op, ": oneDNN's GEMM failed with status ", status);
}

// C[i] = op_a(A[i]) @ op_b(B[i]) (+ C[i] with `accumulate`) for each of `batch` products [m, n].
void GemmBatch(bool bf16, int64_t batch, char ta, char tb, int64_t m, int64_t n, int64_t k, const Operand& a,
               int64_t lda, int64_t a_stride, const Operand& b, int64_t ldb, int64_t b_stride, float* c,
               bool accumulate = false) {
  if (batch == 0 || m == 0 || n == 0) return;  // nothing to compute (oneDNN's GEMM refuses empty operands)
  if (k == 0) {  // a sum of nothing
    if (!accumulate) std::fill(c, c + batch * m * n, 0.0f);
    return;
  }
  if (bf16 && batch == 1 && ta == 'N' && k <= 4 * std::max(m, n) &&
      MatmulPrimitives::Instance().Run(tb, m, n, k, a.bf16.get(), lda, b.bf16.get(), ldb, accumulate, c, n))
    return;
  const float beta = accumulate ? 1.0f : 0.0f;
  Products(batch, "ernie_matmul", [&](int64_t i) {
    return Gemm(bf16, ta, tb, m, n, k, a, i * a_stride, lda, b, i * b_stride, ldb, beta, c + i * m * n, n);
  });
}

std::vector<paddle::Tensor> MatmulForward(const paddle::Tensor& x, const paddle::Tensor& y, bool transpose_y,
                                          bool bf16) {
  CheckFloat32(x, "ernie_matmul", "x");
  CheckFloat32(y, "ernie_matmul", "y");
  const MatmulDims d = Dims(x.shape(), y.shape(), transpose_y, "ernie_matmul");
  std::vector<int64_t> shape = x.shape();
  shape.back() = d.n;
  auto out = paddle::empty(shape, paddle::DataType::FLOAT32, x.place());
  const Operand xo = Prepare(x, bf16), yo = Prepare(y, bf16);
  // Out[m, n] = X[m, k] @ Y[k, n] (Y stored [n, k] when transposed)
  GemmBatch(bf16, d.batch, 'N', transpose_y ? 'T' : 'N', d.m, d.n, d.k, xo, d.k, d.m * d.k, yo,
            transpose_y ? d.k : d.n, d.k * d.n, out.data<float>());
  return {out};
}

std::vector<paddle::Tensor> MatmulBackward(const paddle::Tensor& x, const paddle::Tensor& y, const paddle::Tensor& dout,
                                           bool transpose_y, bool bf16) {
  CheckFloat32(dout, "ernie_matmul_grad", "out@GRAD");
  const MatmulDims d = Dims(x.shape(), y.shape(), transpose_y, "ernie_matmul_grad");
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, x.place());
  auto dy = paddle::empty(y.shape(), paddle::DataType::FLOAT32, y.place());
  const Operand xo = Prepare(x, bf16), yo = Prepare(y, bf16), go = Prepare(dout, bf16);
  // dX[m, k] = dOut[m, n] @ Y^T (Y [k, n]), or dOut @ Y (Y [n, k])
  GemmBatch(bf16, d.batch, 'N', transpose_y ? 'N' : 'T', d.m, d.k, d.n, go, d.n, d.m * d.n, yo,
            transpose_y ? d.k : d.n, d.k * d.n, dx.data<float>());
  // dY summed over the rows a weight is shared by (one product over all of them)
  if (transpose_y)  // dY[n, k] = dOut^T @ X
    GemmBatch(bf16, d.batch, 'T', 'N', d.n, d.k, d.m, go, d.n, d.m * d.n, xo, d.k, d.m * d.k, dy.data<float>());
  else  // dY[k, n] = X^T @ dOut
    GemmBatch(bf16, d.batch, 'T', 'N', d.k, d.n, d.m, xo, d.k, d.m * d.k, go, d.n, d.m * d.n, dy.data<float>());
  return {dx, dy};
}

std::vector<std::vector<int64_t>> MatmulShape(const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                                              bool transpose_y, bool) {
  std::vector<int64_t> out = x;
  out.back() = transpose_y ? y[y.size() - 2] : y.back();
  return {out};
}

std::vector<paddle::DataType> MatmulDtype(const paddle::DataType& x, const paddle::DataType&) { return {x}; }

PD_BUILD_OP(ernie_matmul)
    .Inputs({"X", "Y"})
    .Outputs({"Out"})
    .Attrs({"transpose_y: bool", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(MatmulForward))
    .SetInferShapeFn(PD_INFER_SHAPE(MatmulShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(MatmulDtype));

std::vector<std::vector<int64_t>> MatmulGradShape(const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                                                  const std::vector<int64_t>&, bool, bool) {
  return {x, y};
}

std::vector<paddle::DataType> MatmulGradDtype(const paddle::DataType& x, const paddle::DataType& y,
                                              const paddle::DataType&) {
  return {x, y};
}

PD_BUILD_GRAD_OP(ernie_matmul)
    .Inputs({"X", "Y", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Y")})
    .Attrs({"transpose_y: bool", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(MatmulBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(MatmulGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(MatmulGradDtype));

// ---------------------------------------------------------------------------------------------
// The sum of a value's gradients (a value used twice: a residual's input, the tied word
// embedding), for Paddle's add_n in the backward program (`cpu_kernels.fuse_gradient_sums`): one
// multi-threaded pass, where Paddle's CPU kernel zeroes its output and adds each input in turn on
// one thread. The inputs are added in their order, from the first, as Paddle adds them (after its
// zero, which changes no value), so the sums are Paddle's to the bit.

std::vector<paddle::Tensor> SumForward(const std::vector<paddle::Tensor>& xs) {
  PD_CHECK(!xs.empty(), "ernie_sum: no input");
  std::vector<const float*> in;
  for (const auto& x : xs) {
    CheckFloat32(x, "ernie_sum", "x");
    PD_CHECK(x.shape() == xs[0].shape(), "ernie_sum: the inputs differ in shape");
    in.push_back(x.data<float>());
  }
  auto out = paddle::empty(xs[0].shape(), paddle::DataType::FLOAT32, xs[0].place());
  float* o = out.data<float>();
  const int64_t n = xs[0].numel(), k = static_cast<int64_t>(in.size());
#pragma omp parallel for schedule(static)
  for (int64_t start = 0; start < n; start += 4096) {
    const int64_t end = std::min(n, start + 4096);
    std::copy(in[0] + start, in[0] + end, o + start);
    for (int64_t j = 1; j < k; ++j) {
      const float* x = in[j];
#pragma omp simd
      for (int64_t i = start; i < end; ++i) o[i] += x[i];
    }
  }
  return {out};
}

std::vector<std::vector<int64_t>> SumShape(const std::vector<std::vector<int64_t>>& xs) { return {xs[0]}; }

std::vector<paddle::DataType> SumDtype(const std::vector<paddle::DataType>& xs) { return {xs[0]}; }

PD_BUILD_OP(ernie_sum)
    .Inputs({paddle::Vec("X")})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(SumForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SumShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SumDtype));

// ---------------------------------------------------------------------------------------------
// Linear layer: Out = X @ W + b, W [K, N], in float32 or bfloat16 products as ernie_matmul. The
// output starts as the bias, which the product is added to (no second pass over the output); the
// bias gradient is the output gradient's column sum.

std::vector<paddle::Tensor> LinearForward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                          bool bf16) {
  CheckFloat32(x, "ernie_linear", "x");
  CheckFloat32(w, "ernie_linear", "w");
  CheckFloat32(b, "ernie_linear", "b");
  PD_CHECK(w.shape().size() == 2, "ernie_linear: the weight must be [K, N]");
  const MatmulDims d = Dims(x.shape(), w.shape(), false, "ernie_linear");
  PD_CHECK(b.numel() == d.n, "ernie_linear: the bias must have ", d.n, " elements, has ", b.numel());
  std::vector<int64_t> shape = x.shape();
  shape.back() = d.n;
  auto out = paddle::empty(shape, paddle::DataType::FLOAT32, x.place());
  float* op = out.data<float>();
  const float* bp = b.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) std::copy(bp, bp + d.n, op + r * d.n);
  const Operand xo = Prepare(x, bf16), wo = Prepare(w, bf16);
  GemmBatch(bf16, 1, 'N', 'N', d.m, d.n, d.k, xo, d.k, 0, wo, d.n, 0, op, /*accumulate=*/true);
  return {out};
}

std::vector<paddle::Tensor> LinearBackward(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                                           const paddle::Tensor& dout, bool bf16) {
  CheckFloat32(dout, "ernie_linear_grad", "out@GRAD");
  const MatmulDims d = Dims(x.shape(), w.shape(), false, "ernie_linear_grad");
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, x.place());
  auto dw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, w.place());
  auto db = paddle::empty(b.shape(), paddle::DataType::FLOAT32, b.place());
  const Operand xo = Prepare(x, bf16), wo = Prepare(w, bf16), go = Prepare(dout, bf16);
  GemmBatch(bf16, 1, 'N', 'T', d.m, d.k, d.n, go, d.n, 0, wo, d.n, 0, dx.data<float>());  // dX = dOut @ W^T
  GemmBatch(bf16, 1, 'T', 'N', d.k, d.n, d.m, xo, d.k, 0, go, d.n, 0, dw.data<float>());  // dW = X^T @ dOut
  ColumnSums(dout.data<float>(), d.m, d.n, db.data<float>());
  return {dx, dw, db};
}

std::vector<std::vector<int64_t>> LinearShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                              const std::vector<int64_t>&, bool) {
  std::vector<int64_t> out = x;
  out.back() = w.back();
  return {out};
}

std::vector<paddle::DataType> LinearDtype(const paddle::DataType& x, const paddle::DataType&, const paddle::DataType&) {
  return {x};
}

PD_BUILD_OP(ernie_linear)
    .Inputs({"X", "W", "B"})
    .Outputs({"Out"})
    .Attrs({"bf16: bool"})
    .SetKernelFn(PD_KERNEL(LinearForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LinearDtype));

std::vector<std::vector<int64_t>> LinearGradShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                  const std::vector<int64_t>& b, const std::vector<int64_t>&, bool) {
  return {x, w, b};
}

std::vector<paddle::DataType> LinearGradDtype(const paddle::DataType& x, const paddle::DataType& w,
                                              const paddle::DataType& b, const paddle::DataType&) {
  return {x, w, b};
}

PD_BUILD_GRAD_OP(ernie_linear)
    .Inputs({"X", "W", "B", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .Attrs({"bf16: bool"})
    .SetKernelFn(PD_KERNEL(LinearBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(LinearGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LinearGradDtype));

// ---------------------------------------------------------------------------------------------
// Softmax cross entropy over the last axis with the argmax's verdict, one pass a row: logits
// [..., C], labels [...] (int64; -1: no label). Loss = logsumexp(row) - row[label] and Correct =
// 1 where the first maximum is the label, both 0 where there is no label; Softmax is kept for the
// backward pass, d logits = (softmax - onehot(label)) * d loss. Paddle's own cross entropy and
// argmax each read the [positions, vocabulary] logits of the masked LM once more, on one thread.

std::vector<paddle::Tensor> SoftmaxXentForward(const paddle::Tensor& logits, const paddle::Tensor& labels) {
  CheckFloat32(logits, "ernie_softmax_xent", "logits");
  PD_CHECK(labels.dtype() == paddle::DataType::INT64, "ernie_softmax_xent: labels must be int64");
  const int64_t c = LastDim(logits), rows = logits.numel() / c;
  PD_CHECK(labels.numel() == rows, "ernie_softmax_xent: ", rows, " rows of logits but ", labels.numel(), " labels");
  const std::vector<int64_t> shape = logits.shape();
  const std::vector<int64_t> row_shape(shape.begin(), shape.end() - 1);
  auto loss = paddle::empty(row_shape, paddle::DataType::FLOAT32, logits.place());
  auto correct = paddle::empty(row_shape, paddle::DataType::FLOAT32, logits.place());
  auto softmax = paddle::empty_like(logits);
  const float* xp = logits.data<float>();
  const int64_t* lp = labels.data<int64_t>();
  float *sp = softmax.data<float>(), *lossp = loss.data<float>(), *cp = correct.data<float>();
  int64_t bad = -1;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = xp + r * c;
    float* sm = sp + r * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j) best = x[j] > x[best] ? j : best;
    const float top = x[best];
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < c; ++j) {
      sm[j] = expf(x[j] - top);
      sum += sm[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) sm[j] *= inv;
    const int64_t label = lp[r];
    if (label < -1 || label >= c) {
#pragma omp critical
      bad = label;
    }
    const bool valid = label >= 0 && label < c;
    lossp[r] = valid ? std::log(sum) + top - x[label] : 0.0f;
    cp[r] = valid && best == label ? 1.0f : 0.0f;
  }
  PD_CHECK(bad == -1, "ernie_softmax_xent: label ", bad, " outside [-1, ", c, ")");
  return {loss, correct, softmax};
}

std::vector<paddle::Tensor> SoftmaxXentBackward(const paddle::Tensor& softmax, const paddle::Tensor& labels,
                                                const paddle::Tensor& dloss) {
  CheckFloat32(dloss, "ernie_softmax_xent_grad", "loss@GRAD");
  const int64_t c = LastDim(softmax), rows = softmax.numel() / c;
  auto dx = paddle::empty_like(softmax);
  const float *sp = softmax.data<float>(), *gp = dloss.data<float>();
  const int64_t* lp = labels.data<int64_t>();
  float* dp = dx.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t label = lp[r];
    const float g = label >= 0 ? gp[r] : 0.0f;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) dp[r * c + j] = sp[r * c + j] * g;
    if (label >= 0) dp[r * c + label] -= g;
  }
  return {dx};
}

std::vector<std::vector<int64_t>> SoftmaxXentShape(const std::vector<int64_t>& logits, const std::vector<int64_t>&) {
  std::vector<int64_t> rows(logits.begin(), logits.end() - 1);
  return {rows, rows, logits};
}

std::vector<paddle::DataType> SoftmaxXentDtype(const paddle::DataType& logits, const paddle::DataType&) {
  return {logits, logits, logits};
}

PD_BUILD_OP(ernie_softmax_xent)
    .Inputs({"Logits", "Labels"})
    .Outputs({"Loss", "Correct", "Softmax"})
    .SetKernelFn(PD_KERNEL(SoftmaxXentForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SoftmaxXentShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SoftmaxXentDtype));

std::vector<std::vector<int64_t>> SoftmaxXentGradShape(const std::vector<int64_t>& softmax, const std::vector<int64_t>&,
                                                       const std::vector<int64_t>&) {
  return {softmax};
}

std::vector<paddle::DataType> SoftmaxXentGradDtype(const paddle::DataType& softmax, const paddle::DataType&,
                                                   const paddle::DataType&) {
  return {softmax};
}

PD_BUILD_GRAD_OP(ernie_softmax_xent)
    .Inputs({"Softmax", "Labels", paddle::Grad("Loss")})
    .Outputs({paddle::Grad("Logits")})
    .SetKernelFn(PD_KERNEL(SoftmaxXentBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(SoftmaxXentGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SoftmaxXentGradDtype));

// ---------------------------------------------------------------------------------------------
// Attention's two products read the heads where the projections wrote them: Q, K, V are
// [B, T, heads x d], head h of row t at columns [h d, (h + 1) d), so each head's matrix is a
// strided view (leading dimension heads x d) and no transpose copies them to [B, heads, T, d]
// and back (Paddle's transposes cost 3% of the tiny model's step). Scores S = Q_h K_h^T
// [B, heads, T, T]; context C_h = P_h V_h written back into [B, T, heads x d]. Float32 or
// bfloat16 products as ernie_matmul's.

struct HeadDims {
  int64_t batch, t, heads, d, width;  // width = heads x d: the leading dimension of Q, K, V, C
  int64_t row(int64_t i) const { return (i / heads) * t * width + (i % heads) * d; }  // head i's first element
  int64_t square(int64_t i) const { return i * t * t; }  // its [T, T] matrix in S or P
};

HeadDims Heads(const std::vector<int64_t>& x, int64_t heads, const char* op) {
  PD_CHECK(x.size() == 3, op, ": expected [batch, length, heads x size]");
  PD_CHECK(heads > 0 && x[2] % heads == 0, op, ": ", x[2], " columns do not split into ", heads, " heads");
  return {x[0], x[1], heads, x[2] / heads, x[2]};
}

std::vector<paddle::Tensor> AttentionScoresForward(const paddle::Tensor& q, const paddle::Tensor& k, int64_t heads,
                                                   bool bf16) {
  CheckFloat32(q, "ernie_attention_scores", "q");
  CheckFloat32(k, "ernie_attention_scores", "k");
  PD_CHECK(q.shape() == k.shape(), "ernie_attention_scores: q and k must have one shape");
  const HeadDims h = Heads(q.shape(), heads, "ernie_attention_scores");
  auto s = paddle::empty({h.batch, h.heads, h.t, h.t}, paddle::DataType::FLOAT32, q.place());
  const Operand qo = Prepare(q, bf16), ko = Prepare(k, bf16);
  float* sp = s.data<float>();
  Products(h.batch * h.heads, "ernie_attention_scores", [&](int64_t i) {  // S_h = Q_h K_h^T
    return Gemm(bf16, 'N', 'T', h.t, h.t, h.d, qo, h.row(i), h.width, ko, h.row(i), h.width, 0.0f, sp + h.square(i), h.t);
  });
  return {s};
}

std::vector<paddle::Tensor> AttentionScoresBackward(const paddle::Tensor& q, const paddle::Tensor& k,
                                                    const paddle::Tensor& ds, int64_t heads, bool bf16) {
  CheckFloat32(ds, "ernie_attention_scores_grad", "scores@GRAD");
  const HeadDims h = Heads(q.shape(), heads, "ernie_attention_scores_grad");
  auto dq = paddle::empty(q.shape(), paddle::DataType::FLOAT32, q.place());
  auto dk = paddle::empty(k.shape(), paddle::DataType::FLOAT32, k.place());
  const Operand qo = Prepare(q, bf16), ko = Prepare(k, bf16), go = Prepare(ds, bf16);
  float *dqp = dq.data<float>(), *dkp = dk.data<float>();
  Products(h.batch * h.heads, "ernie_attention_scores_grad", [&](int64_t i) {
    return Gemm(bf16, 'N', 'N', h.t, h.d, h.t, go, h.square(i), h.t, ko, h.row(i), h.width, 0.0f, dqp + h.row(i),
                h.width)  // dQ_h = dS_h K_h
           | Gemm(bf16, 'T', 'N', h.t, h.d, h.t, go, h.square(i), h.t, qo, h.row(i), h.width, 0.0f, dkp + h.row(i),
                  h.width);  // dK_h = dS_h^T Q_h
  });
  return {dq, dk};
}

std::vector<std::vector<int64_t>> AttentionScoresShape(const std::vector<int64_t>& q, const std::vector<int64_t>&,
                                                       int64_t heads, bool) {
  return {{q[0], heads, q[1], q[1]}};
}

std::vector<paddle::DataType> AttentionScoresDtype(const paddle::DataType& q, const paddle::DataType&) { return {q}; }

PD_BUILD_OP(ernie_attention_scores)
    .Inputs({"Q", "K"})
    .Outputs({"Scores"})
    .Attrs({"heads: int64_t", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(AttentionScoresForward))
    .SetInferShapeFn(PD_INFER_SHAPE(AttentionScoresShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AttentionScoresDtype));

std::vector<std::vector<int64_t>> AttentionScoresGradShape(const std::vector<int64_t>& q, const std::vector<int64_t>& k,
                                                           const std::vector<int64_t>&, int64_t, bool) {
  return {q, k};
}

std::vector<paddle::DataType> AttentionScoresGradDtype(const paddle::DataType& q, const paddle::DataType& k,
                                                       const paddle::DataType&) {
  return {q, k};
}

PD_BUILD_GRAD_OP(ernie_attention_scores)
    .Inputs({"Q", "K", paddle::Grad("Scores")})
    .Outputs({paddle::Grad("Q"), paddle::Grad("K")})
    .Attrs({"heads: int64_t", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(AttentionScoresBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(AttentionScoresGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AttentionScoresGradDtype));

std::vector<paddle::Tensor> AttentionContextForward(const paddle::Tensor& p, const paddle::Tensor& v, int64_t heads,
                                                    bool bf16) {
  CheckFloat32(p, "ernie_attention_context", "probs");
  CheckFloat32(v, "ernie_attention_context", "v");
  const HeadDims h = Heads(v.shape(), heads, "ernie_attention_context");
  PD_CHECK(p.shape() == std::vector<int64_t>({h.batch, h.heads, h.t, h.t}),
           "ernie_attention_context: probs must be [batch, heads, length, length] of v's");
  auto c = paddle::empty(v.shape(), paddle::DataType::FLOAT32, v.place());
  const Operand po = Prepare(p, bf16), vo = Prepare(v, bf16);
  float* cp = c.data<float>();
  Products(h.batch * h.heads, "ernie_attention_context", [&](int64_t i) {  // C_h = P_h V_h
    return Gemm(bf16, 'N', 'N', h.t, h.d, h.t, po, h.square(i), h.t, vo, h.row(i), h.width, 0.0f, cp + h.row(i), h.width);
  });
  return {c};
}

std::vector<paddle::Tensor> AttentionContextBackward(const paddle::Tensor& p, const paddle::Tensor& v,
                                                     const paddle::Tensor& dc, int64_t heads, bool bf16) {
  CheckFloat32(dc, "ernie_attention_context_grad", "context@GRAD");
  const HeadDims h = Heads(v.shape(), heads, "ernie_attention_context_grad");
  auto dp = paddle::empty(p.shape(), paddle::DataType::FLOAT32, p.place());
  auto dv = paddle::empty(v.shape(), paddle::DataType::FLOAT32, v.place());
  const Operand po = Prepare(p, bf16), vo = Prepare(v, bf16), go = Prepare(dc, bf16);
  float *dpp = dp.data<float>(), *dvp = dv.data<float>();
  Products(h.batch * h.heads, "ernie_attention_context_grad", [&](int64_t i) {
    return Gemm(bf16, 'N', 'T', h.t, h.t, h.d, go, h.row(i), h.width, vo, h.row(i), h.width, 0.0f, dpp + h.square(i),
                h.t)  // dP_h = dC_h V_h^T
           | Gemm(bf16, 'T', 'N', h.t, h.d, h.t, po, h.square(i), h.t, go, h.row(i), h.width, 0.0f, dvp + h.row(i),
                  h.width);  // dV_h = P_h^T dC_h
  });
  return {dp, dv};
}

std::vector<std::vector<int64_t>> AttentionContextShape(const std::vector<int64_t>&, const std::vector<int64_t>& v,
                                                        int64_t, bool) {
  return {v};
}

std::vector<paddle::DataType> AttentionContextDtype(const paddle::DataType&, const paddle::DataType& v) { return {v}; }

PD_BUILD_OP(ernie_attention_context)
    .Inputs({"Probs", "V"})
    .Outputs({"Context"})
    .Attrs({"heads: int64_t", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(AttentionContextForward))
    .SetInferShapeFn(PD_INFER_SHAPE(AttentionContextShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AttentionContextDtype));

std::vector<std::vector<int64_t>> AttentionContextGradShape(const std::vector<int64_t>& p, const std::vector<int64_t>& v,
                                                            const std::vector<int64_t>&, int64_t, bool) {
  return {p, v};
}

std::vector<paddle::DataType> AttentionContextGradDtype(const paddle::DataType& p, const paddle::DataType& v,
                                                        const paddle::DataType&) {
  return {p, v};
}

PD_BUILD_GRAD_OP(ernie_attention_context)
    .Inputs({"Probs", "V", paddle::Grad("Context")})
    .Outputs({paddle::Grad("Probs"), paddle::Grad("V")})
    .Attrs({"heads: int64_t", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(AttentionContextBackward))
    .SetInferShapeFn(PD_INFER_SHAPE(AttentionContextGradShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(AttentionContextGradDtype));
