// libcarafe public API: the CARAFE reassembly operator on raw memory.
//
// No Python, no libtorch: callers pass pointers, sizes, element strides, a dtype and, for CUDA, a stream.
// The operator (Wang et al., ICCV 2019), with r = (k-1)/2 and g(c) = floor(c / (C/G)):
//
//   Y[n,c,y,x] = sum_{dy,dx in [-r,r]} M[n, g(c)*k*k + (dy+r)*k + (dx+r), y, x] * X[n, c, y/sigma + dy, x/sigma + dx]
//
// features X: (N, C, H, W); masks M: (N, G*k*k, OH, OW); output Y: (N, C, OH, OW), by default OH, OW =
// sigma*H, sigma*W. For any output size, y/sigma above generalizes to floor(y * H / OH): the input pixel that
// nearest-neighbour interpolation to that size picks (the same pixel when OH = sigma*H).
// Taps outside X count as zero. Masks are used as given (not normalized).
//
// Errors: invalid arguments throw std::invalid_argument; CUDA failures and backends missing from this build
// throw std::runtime_error. Both carry a message naming what was wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct CUstream_st;  // the type behind cudaStream_t; declared here so this header needs no CUDA headers

namespace carafe {

using CudaStream = CUstream_st*;

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

const char* dtype_name(DType dtype);

// Element strides of a 4-d tensor (not bytes). Any layout works: NCHW, NHWC (channels_last), views.
struct Strides {
  int64_t n, c, h, w;
};

// One CARAFE problem: the features' sizes and the operator's hyper-parameters.
struct Problem {
  int64_t batch = 0;     // N
  int64_t channels = 0;  // C
  int64_t height = 0;    // H of the features
  int64_t width = 0;     // W of the features
  int kernel_size = 5;   // k_up, odd
  int group_size = 1;    // G, divides C
  int scale_factor = 2;  // sigma
  DType dtype = DType::Float32;
  int64_t output_height = 0;  // OH; 0: sigma * H
  int64_t output_width = 0;   // OW; 0: sigma * W

  int64_t out_height() const { return output_height > 0 ? output_height : height * scale_factor; }
  int64_t out_width() const { return output_width > 0 ? output_width : width * scale_factor; }
  int64_t mask_channels() const { return int64_t(group_size) * kernel_size * kernel_size; }
};

struct ConstTensorRef {
  const void* data;
  Strides strides;
};

struct TensorRef {
  void* data;
  Strides strides;
};

enum class DeviceKind : int { CPU = 0, CUDA = 1 };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;                // CUDA device ordinal
  CudaStream stream = nullptr;  // CUDA stream to launch on (nullptr: the legacy default stream)
  int num_threads = 0;          // CPU worker threads (0: all hardware threads)
};

// features, masks -> output
void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output);

// grad_output, features, masks -> grad_features, grad_masks. Deterministic: every gradient element is
// written by one thread summing in a fixed order, so repeated runs give bit-identical results.
void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks);

// The fused kernel normalizer: the same reassembly, with the masks made inside the kernel from the content
// encoder's raw output, logits (N, sigma^2*k*k*G, H, W): pixel shuffle by sigma, then softmax over each
// group's k*k taps, i.e. M[n, g*k*k + t, sigma*h + i, sigma*w + j] = softmax_t L[n, (g*k*k + t)*sigma^2 +
// i*sigma + j, h, w]. The normalized masks are never written to memory. The output is sigma*H x sigma*W.
void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output);

// The backward takes a workspace of normalized_backward_workspace_bytes(problem, device) bytes on the device
// (suitably aligned for doubles; nullptr where that is 0): on CUDA, the softmax max and 1/sum of every output
// pixel and group, 2/(k*k) of the masks' size in float32.
int64_t normalized_backward_workspace_bytes(const Problem& problem, const Device& device);
void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits, void* workspace = nullptr);

// Checks a problem's hyper-parameters and sizes; throws std::invalid_argument naming the bad value.
void validate(const Problem& problem);

struct BuildInfo {
  std::string version;
  bool cuda = false;                // the CUDA backend was compiled in
  int cuda_runtime_version = 0;     // CUDART_VERSION at build time, e.g. 13000
  std::string cuda_architectures;   // as given to CMake, e.g. "75-real;80-real;90"
  std::string cxx_compiler;
};

BuildInfo build_info();

// The CUDA version the installed NVIDIA driver supports (e.g. 13000), 0 when there is no driver or no CUDA
// backend in this build. Never fails.
int cuda_driver_version();

}  // namespace carafe
