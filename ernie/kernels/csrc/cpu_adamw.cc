// AdamW over every parameter of a model in one op, on the CPU, float32: the gradients clipped by
// their global norm, decoupled weight decay, and the whole step skipped where a gradient is not
// finite. It computes what Paddle's `ClipGradByGlobalNorm` followed by one `adamw_` op per
// parameter computes (ernie/kernels/cpu_adamw.py has the reasons and the figures).
//
// Paddle's static program does that as one multiply per gradient (the clip), one adamw_ per
// parameter and a second squared norm of every gradient: on the tiny pre-training step, 340 ops
// that read every gradient three times, mostly on one thread. Here every element of every
// parameter is read and written once, the work cut into equal chunks over all threads; the
// squared global norm comes in as an input (propeller.nonfinite computed it for its finiteness
// check).
//
// The update of one element, as Paddle's CPU adamw_ (phi::AdamwDenseKernel) does it, with
// g = grad * clip, lr the learning rate, b1p and b2p the parameter's powers of beta1 and beta2:
//   p   = p - lr * coeff * p                                 (decay; coeff 0 where it does not apply)
//   m   = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
//   p   = p - lr sqrt(1 - b2p) / (1 - b1p) * m / (sqrt(v) + epsilon sqrt(1 - b2p))
// then b1p *= beta1, b2p *= beta2.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

namespace {

// Elements per unit of work: small enough that the units of a model spread evenly over the threads.
constexpr int64_t kChunk = 1 << 14;

struct Chunk {
  float* param;
  const float* grad;
  float* moment1;
  float* moment2;
  int64_t count;
  float keep, step_size, eps;  // the parameter's 1 - lr * decay, its step size and epsilon
};

void CheckCpuFloat32(const paddle::Tensor& t, const char* what, size_t i) {
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32 && t.is_cpu(), "ernie_adamw_: ", what, "[", i,
           "] must be a float32 tensor on the CPU");
}

}  // namespace

void AdamWUpdate(std::vector<paddle::Tensor>& params, const std::vector<paddle::Tensor>& grads,
                 std::vector<paddle::Tensor>& moment1, std::vector<paddle::Tensor>& moment2,
                 std::vector<paddle::Tensor>& beta1_pow, std::vector<paddle::Tensor>& beta2_pow,
                 const paddle::Tensor& learning_rate, const paddle::Tensor& squared_norm, float beta1, float beta2,
                 float epsilon, float clip_norm, const std::vector<float>& decay) {
  const size_t n = params.size();
  PD_CHECK(grads.size() == n && moment1.size() == n && moment2.size() == n && beta1_pow.size() == n &&
               beta2_pow.size() == n && decay.size() == n,
           "ernie_adamw_: ", n, " parameters, but ", grads.size(), " gradients, ", moment1.size(), " and ",
           moment2.size(), " moments, ", beta1_pow.size(), " and ", beta2_pow.size(), " powers of beta, ",
           decay.size(), " decay coefficients");
  const float norm2 = squared_norm.data<float>()[0];
  if (!std::isfinite(norm2)) return;  // a non-finite gradient: the step changes nothing
  // Paddle keeps a static program's learning rate in float64 or float32
  const float lr = learning_rate.dtype() == paddle::DataType::FLOAT64
                       ? static_cast<float>(learning_rate.data<double>()[0])
                       : learning_rate.data<float>()[0];
  const float norm = std::sqrt(norm2);
  const float clip = clip_norm > 0.0f ? clip_norm / std::max(norm, clip_norm) : 1.0f;

  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; ++i) {
    CheckCpuFloat32(params[i], "Param", i);
    CheckCpuFloat32(grads[i], "Grad", i);
    CheckCpuFloat32(moment1[i], "Moment1", i);
    CheckCpuFloat32(moment2[i], "Moment2", i);
    const int64_t numel = params[i].numel();
    PD_CHECK(grads[i].numel() == numel && moment1[i].numel() == numel && moment2[i].numel() == numel,
             "ernie_adamw_: parameter ", i, " has ", numel, " elements, its gradient ", grads[i].numel(),
             ", its moments ", moment1[i].numel(), " and ", moment2[i].numel());
    const float b1p = beta1_pow[i].data<float>()[0], b2p = beta2_pow[i].data<float>()[0];
    const float keep = 1.0f - lr * decay[i], step_size = lr * std::sqrt(1.0f - b2p) / (1.0f - b1p);
    const float eps = epsilon * std::sqrt(1.0f - b2p);
    float* p = params[i].data<float>();
    const float* g = grads[i].data<float>();
    float* m = moment1[i].data<float>();
    float* v = moment2[i].data<float>();
    for (int64_t b = 0; b < numel; b += kChunk) {
      chunks.push_back({p + b, g + b, m + b, v + b, std::min(kChunk, numel - b), keep, step_size, eps});
    }
  }

// Static: the chunks are equal but for each parameter's last. (Where Paddle has loaded Intel's
// OpenMP, whose GOMP_* entry points then serve this library, a dynamic schedule ran the update at
// one thread's speed: 140 ms on the base model's 110 M values against 75 ms static.)
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk k = chunks[c];
    float* __restrict p = k.param;
    const float* __restrict g = k.grad;
    float* __restrict m = k.moment1;
    float* __restrict v = k.moment2;
#pragma omp simd
    for (int64_t j = 0; j < k.count; ++j) {
      const float gj = g[j] * clip;
      const float mj = beta1 * m[j] + (1.0f - beta1) * gj;
      const float vj = beta2 * v[j] + (1.0f - beta2) * gj * gj;
      m[j] = mj;
      v[j] = vj;
      p[j] = p[j] * k.keep - k.step_size * (mj / (std::sqrt(vj) + k.eps));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    beta1_pow[i].data<float>()[0] *= beta1;
    beta2_pow[i].data<float>()[0] *= beta2;
  }
}

PD_BUILD_OP(ernie_adamw_)
    .Inputs({paddle::Vec("Param"), paddle::Vec("Grad"), paddle::Vec("Moment1"), paddle::Vec("Moment2"),
             paddle::Vec("Beta1Pow"), paddle::Vec("Beta2Pow"), "LearningRate", "SquaredNorm"})
    .Outputs({paddle::Vec("ParamOut"), paddle::Vec("Moment1Out"), paddle::Vec("Moment2Out"),
              paddle::Vec("Beta1PowOut"), paddle::Vec("Beta2PowOut")})
    .Attrs({"beta1: float", "beta2: float", "epsilon: float", "clip_norm: float", "decay: std::vector<float>"})
    .SetInplaceMap({{paddle::Vec("Param"), paddle::Vec("ParamOut")},
                    {paddle::Vec("Moment1"), paddle::Vec("Moment1Out")},
                    {paddle::Vec("Moment2"), paddle::Vec("Moment2Out")},
                    {paddle::Vec("Beta1Pow"), paddle::Vec("Beta1PowOut")},
                    {paddle::Vec("Beta2Pow"), paddle::Vec("Beta2PowOut")}})
    .SetKernelFn(PD_KERNEL(AdamWUpdate));

// ---------------------------------------------------------------------------------------------
// The sum of the squares of every element of every tensor (the squared global norm of a model's
// gradients), in one threaded pass where Paddle takes a squared_l2_norm op per tensor on one
// thread and adds them. Each chunk's sum in double, the chunks' sums added in order: the same
// result on any number of threads. A non-finite element, or a sum beyond float32, gives inf or nan.

std::vector<paddle::Tensor> SquaredNorm(const std::vector<paddle::Tensor>& xs) {
  std::vector<std::pair<const float*, int64_t>> chunks;
  for (size_t i = 0; i < xs.size(); ++i) {
    CheckCpuFloat32(xs[i], "X", i);
    const float* x = xs[i].data<float>();
    const int64_t numel = xs[i].numel();
    for (int64_t b = 0; b < numel; b += kChunk) chunks.emplace_back(x + b, std::min(kChunk, numel - b));
  }
  std::vector<double> partial(chunks.size());
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks.size(); ++c) {
    const float* x = chunks[c].first;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < chunks[c].second; ++j) sum += static_cast<double>(x[j]) * x[j];
    partial[c] = sum;
  }
  double total = 0.0;
  for (double sum : partial) total += sum;
  paddle::Tensor out = paddle::empty({1}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  out.data<float>()[0] = static_cast<float>(total);
  return {out};
}

std::vector<std::vector<int64_t>> SquaredNormShape(const std::vector<std::vector<int64_t>>&) { return {{1}}; }

std::vector<paddle::DataType> SquaredNormDtype(const std::vector<paddle::DataType>&) {
  return {paddle::DataType::FLOAT32};
}

PD_BUILD_OP(ernie_squared_norm)
    .Inputs({paddle::Vec("X")})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(SquaredNorm))
    .SetInferShapeFn(PD_INFER_SHAPE(SquaredNormShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SquaredNormDtype));
