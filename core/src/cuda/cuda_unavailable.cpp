// Stands in for the CUDA backend in builds without it: every call says so.
#include <stdexcept>

#include "backends.h"

namespace carafe {
namespace cuda {
namespace {

[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "carafe: this build of libcarafe has no CUDA backend (it was configured without a CUDA compiler). "
      "Rebuild with nvcc available (CARAFE_CUDA=ON), or move the tensors to the CPU.");
}

}  // namespace

void reassemble_forward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, TensorRef) { unavailable(); }

void reassemble_backward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, ConstTensorRef, TensorRef,
                         TensorRef) {
  unavailable();
}

void reassemble_normalized_forward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, TensorRef) {
  unavailable();
}

int64_t normalized_backward_workspace_bytes(const Problem&) { return 0; }

void reassemble_normalized_backward(const Problem&, const Device&, ConstTensorRef, ConstTensorRef, ConstTensorRef,
                                    TensorRef, TensorRef, void*) {
  unavailable();
}

int compiled_runtime_version() { return 0; }

int driver_version() { return 0; }

}  // namespace cuda
}  // namespace carafe
