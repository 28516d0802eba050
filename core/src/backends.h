// The backends behind the public API; both have the same signatures. carafe.cpp validates and dispatches.
#pragma once

#include "carafe/carafe.h"

namespace carafe {
namespace cpu {

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output);
void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks);

void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output);
void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits);

}  // namespace cpu

namespace cuda {

// Defined in cuda/reassemble_cuda.cu when the CUDA backend is built; otherwise they throw.
void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output);
void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks);

// CUDART_VERSION the backend was compiled with; 0 when it was not built.
int compiled_runtime_version();

// cudaDriverGetVersion; 0 without a driver or without the backend.
int driver_version();

void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output);
// Bytes of the workspace reassemble_normalized_backward needs (the softmax statistics); 0 without the backend.
int64_t normalized_backward_workspace_bytes(const Problem& problem);
void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits, void* workspace);

}  // namespace cuda
}  // namespace carafe
