// CUDA backend: one GPU thread per output element, computed by reassemble_elements.h (the same code the CPU
// backend runs). Grid-stride loops with 64-bit indices; the innermost grid dimension is the fastest-varying
// one of the tensor, so neighbouring threads touch neighbouring addresses in NCHW layouts.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "backends.h"
#include "dtype_dispatch.h"
#include "reassemble_elements.h"

namespace carafe {
namespace cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("carafe: CUDA error in ") + what + ": " + cudaGetErrorName(status) +
                             " (" + cudaGetErrorString(status) + ")");
  }
}

// Makes device.index current for the scope of a call, and restores the caller's device after it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != index) check(cudaSetDevice(index), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

template <typename T>
struct ForwardElement {
  Geometry g;
  Operands<T> features, masks;
  __device__ accumulate_t<T> operator()(int64_t n, int64_t c, int64_t oy, int64_t ox) const {
    return forward_element(g, features, masks, n, c, oy, ox);
  }
};

template <typename T>
struct GradFeatureElement {
  Geometry g;
  Operands<T> grad_output, masks;
  __device__ accumulate_t<T> operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return grad_feature_element(g, grad_output, masks, n, c, h, w);
  }
};

template <typename T>
struct GradMaskElement {
  Geometry g;
  Operands<T> grad_output, features;
  __device__ accumulate_t<T> operator()(int64_t n, int64_t mc, int64_t oy, int64_t ox) const {
    return grad_mask_element(g, grad_output, features, n, mc, oy, ox);
  }
};

template <typename T, typename Element>
__global__ void fill_kernel(int64_t B, int64_t C, int64_t D, int64_t total, T* out, Strides s, Element element) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const Index4 idx = unflatten(i, B, C, D);
    out[element_offset(s, idx.a, idx.b, idx.c, idx.d)] = store<T>(element(idx.a, idx.b, idx.c, idx.d));
  }
}

template <typename T, typename Element>
void fill(int64_t A, int64_t B, int64_t C, int64_t D, TensorRef out, const Device& device, const Element& element) {
  constexpr int threads = 256;
  const int64_t total = A * B * C * D;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 30);
  fill_kernel<T><<<unsigned(blocks), threads, 0, device.stream>>>(B, C, D, total, static_cast<T*>(out.data),
                                                                   out.strides, element);
  check(cudaGetLastError(), "kernel launch");
}

}  // namespace

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  const DeviceGuard guard(device.index);
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const Operands<T> m{static_cast<const T*>(masks.data), masks.strides};
    fill<T>(g.N, g.C, g.OH, g.OW, output, device, ForwardElement<T>{g, x, m});
  });
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  const DeviceGuard guard(device.index);
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const Operands<T> m{static_cast<const T*>(masks.data), masks.strides};
    fill<T>(g.N, g.C, g.H, g.W, grad_features, device, GradFeatureElement<T>{g, dy, m});
    fill<T>(g.N, int64_t(g.G) * g.k * g.k, g.OH, g.OW, grad_masks, device, GradMaskElement<T>{g, dy, x});
  });
}

// The fused kernel normalizer has no CUDA kernel yet (its fast version is part of the tuned CUDA kernels).
[[noreturn]] void no_fused_kernel() {
  throw std::runtime_error(
      "carafe: the fused kernel normalizer has no CUDA kernel yet; normalize the masks first (CARAFEPack does so "
      "on CUDA) or run on the CPU");
}

void reassemble_normalized_forward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, TensorRef) {
  no_fused_kernel();
}

void reassemble_normalized_backward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, ConstTensorRef,
                                    TensorRef, TensorRef) {
  no_fused_kernel();
}

int compiled_runtime_version() { return CUDART_VERSION; }

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) version = 0;
  return version;
}

}  // namespace cuda
}  // namespace carafe
