// The public API: argument checks, then dispatch to the backend the Device names.
#include "carafe/carafe.h"

#include <stdexcept>
#include <string>

#include "backends.h"

#ifndef CARAFE_VERSION
#define CARAFE_VERSION "0.0.0"
#endif
#ifndef CARAFE_CUDA_ARCHITECTURES
#define CARAFE_CUDA_ARCHITECTURES ""
#endif
#ifndef CARAFE_CXX_COMPILER
#define CARAFE_CXX_COMPILER ""
#endif

namespace carafe {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("carafe: " + message);
}

void require_data(const void* data, const char* name) {
  require(data != nullptr, std::string(name) + " is a null pointer");
}

void require_default_output_size(const Problem& p) {
  require(p.out_height() == p.height * p.scale_factor && p.out_width() == p.width * p.scale_factor,
          "the fused kernel normalizer produces sigma*H x sigma*W outputs only");
}

}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "unknown";
}

void validate(const Problem& p) {
  require(p.kernel_size >= 1 && p.kernel_size % 2 == 1,
          "kernel_size must be an odd integer >= 1, got " + std::to_string(p.kernel_size));
  require(p.scale_factor >= 1, "scale_factor must be an integer >= 1, got " + std::to_string(p.scale_factor));
  require(p.group_size >= 1, "group_size must be an integer >= 1, got " + std::to_string(p.group_size));
  // N = 0 is valid (a Mask R-CNN mask head on an image without detections): the ops then do nothing
  require(p.batch >= 0 && p.channels > 0 && p.height > 0 && p.width > 0,
          "features must have N >= 0 and C, H, W > 0, got (N, C, H, W) = (" + std::to_string(p.batch) + ", " +
              std::to_string(p.channels) + ", " + std::to_string(p.height) + ", " + std::to_string(p.width) + ")");
  require(p.channels % p.group_size == 0, "channels (" + std::to_string(p.channels) +
                                              ") must be divisible by group_size (" +
                                              std::to_string(p.group_size) + ")");
  require(p.output_height >= 0 && p.output_width >= 0,
          "output size must be positive, got (" + std::to_string(p.output_height) + ", " +
              std::to_string(p.output_width) + ")");
  const int code = int(p.dtype);
  require(code >= 0 && code <= 3, "dtype code " + std::to_string(code) + " is not a supported dtype");
}

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  validate(problem);
  if (problem.batch == 0) return;  // nothing to compute or write
  require_data(features.data, "features");
  require_data(masks.data, "masks");
  require_data(output.data, "output");
  if (device.kind == DeviceKind::CPU) return cpu::reassemble_forward(problem, device, features, masks, output);
  if (device.kind == DeviceKind::CUDA) return cuda::reassemble_forward(problem, device, features, masks, output);
  throw std::invalid_argument("carafe: unknown device kind " + std::to_string(int(device.kind)));
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  validate(problem);
  if (problem.batch == 0) return;  // nothing to compute or write
  require_data(grad_output.data, "grad_output");
  require_data(features.data, "features");
  require_data(masks.data, "masks");
  require_data(grad_features.data, "grad_features");
  require_data(grad_masks.data, "grad_masks");
  if (device.kind == DeviceKind::CPU)
    return cpu::reassemble_backward(problem, device, grad_output, features, masks, grad_features, grad_masks);
  if (device.kind == DeviceKind::CUDA)
    return cuda::reassemble_backward(problem, device, grad_output, features, masks, grad_features, grad_masks);
  throw std::invalid_argument("carafe: unknown device kind " + std::to_string(int(device.kind)));
}

void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output) {
  validate(problem);
  require_default_output_size(problem);
  if (problem.batch == 0) return;  // nothing to compute or write
  require_data(features.data, "features");
  require_data(logits.data, "logits");
  require_data(output.data, "output");
  if (device.kind == DeviceKind::CPU) return cpu::reassemble_normalized_forward(problem, device, features, logits, output);
  if (device.kind == DeviceKind::CUDA)
    return cuda::reassemble_normalized_forward(problem, device, features, logits, output);
  throw std::invalid_argument("carafe: unknown device kind " + std::to_string(int(device.kind)));
}

int64_t normalized_backward_workspace_bytes(const Problem& problem, const Device& device) {
  validate(problem);
  return device.kind == DeviceKind::CUDA ? cuda::normalized_backward_workspace_bytes(problem) : 0;
}

void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits, void* workspace) {
  validate(problem);
  require_default_output_size(problem);
  if (problem.batch == 0) return;  // nothing to compute or write
  require_data(grad_output.data, "grad_output");
  require_data(features.data, "features");
  require_data(logits.data, "logits");
  require_data(grad_features.data, "grad_features");
  require_data(grad_logits.data, "grad_logits");
  if (device.kind == DeviceKind::CPU)
    return cpu::reassemble_normalized_backward(problem, device, grad_output, features, logits, grad_features,
                                               grad_logits);
  if (device.kind == DeviceKind::CUDA) {
    if (workspace == nullptr && cuda::normalized_backward_workspace_bytes(problem) > 0)
      throw std::invalid_argument("carafe: workspace is null; reassemble_normalized_backward on CUDA needs "
                                  "normalized_backward_workspace_bytes(problem, device) bytes of device memory");
    return cuda::reassemble_normalized_backward(problem, device, grad_output, features, logits, grad_features,
                                                grad_logits, workspace);
  }
  throw std::invalid_argument("carafe: unknown device kind " + std::to_string(int(device.kind)));
}

BuildInfo build_info() {
  BuildInfo info;
  info.version = CARAFE_VERSION;
  info.cuda_runtime_version = cuda::compiled_runtime_version();
  info.cuda = info.cuda_runtime_version > 0;
  if (info.cuda) info.cuda_architectures = CARAFE_CUDA_ARCHITECTURES;
  info.cxx_compiler = CARAFE_CXX_COMPILER;
  return info;
}

int cuda_driver_version() { return cuda::driver_version(); }

}  // namespace carafe
