// CUDA backend: launches the thread programs of thread_programs.h (the same code test_cuda_programs runs on
// the host) on the caller's stream, with grid-stride loops and 64-bit indices.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <stdexcept>
#include <string>

#include "backends.h"
#include "cuda/thread_programs.h"

namespace carafe {
namespace cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("carafe: CUDA error in ") + what + ": " + cudaGetErrorName(status) +
                             " (" + cudaGetErrorString(status) + ")");
  }
}

// Makes device.index current for the scope of a call and, only if that changed it, restores the caller's
// device after it. Callers that manage devices themselves (carafe-ops enters torch.cuda.device first, which
// creates no context on a device it merely restores) make this a no-op: nothing here touches the current
// device when it already is device.index, so no context is ever created on another GPU.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != index) {
      check(cudaSetDevice(index), "cudaSetDevice");
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    // a destructor cannot throw: a failed restore is cleared here, not reported later as a launch failure
    if (changed_ && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Runs a thread program (thread_programs.h) over a grid-stride loop: program(i) for every i < threads.
template <typename Program>
__global__ void __launch_bounds__(256) run_program(Program program, int64_t threads) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < threads; i += stride) program(i);
}

struct CudaExecutor {
  cudaStream_t stream;
  int64_t target_threads;  // enough resident threads to fill the GPU twice over

  explicit CudaExecutor(const Device& device)
      : stream(reinterpret_cast<cudaStream_t>(device.stream)),
        target_threads(int64_t(multiprocessors(device.index)) * 2048 * 2) {}

  // the device's multiprocessor count, asked once per device (not on every call of an op)
  static int multiprocessors(int index) {
    static std::array<std::atomic<int>, 64> known{};
    std::atomic<int>* slot = index >= 0 && index < int(known.size()) ? &known[size_t(index)] : nullptr;
    if (slot != nullptr && slot->load() > 0) return slot->load();
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, index), "cudaDeviceGetAttribute");
    if (slot != nullptr) slot->store(sms);
    return sms;
  }

  template <typename Program>
  void operator()(const Program& program) const {
    constexpr int block = 256;
    const int64_t threads = program.threads();
    if (threads == 0) return;
    const int64_t blocks = std::min<int64_t>((threads + block - 1) / block, int64_t(1) << 30);
    run_program<<<unsigned(blocks), block, 0, stream>>>(program, threads);
    check(cudaGetLastError(), "kernel launch");
  }
};

}  // namespace

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  const DeviceGuard guard(device.index);
  CudaExecutor executor(device);
  programs::reassemble_forward(problem, features, masks, output, executor);
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  const DeviceGuard guard(device.index);
  CudaExecutor executor(device);
  programs::reassemble_backward(problem, grad_output, features, masks, grad_features, grad_masks, executor);
}

void reassemble_normalized_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                                   ConstTensorRef logits, TensorRef output) {
  const DeviceGuard guard(device.index);
  CudaExecutor executor(device);
  programs::reassemble_normalized_forward(problem, features, logits, output, executor);
}

int64_t normalized_backward_workspace_bytes(const Problem& problem) {
  return programs::normalized_backward_workspace_bytes(problem);
}

void reassemble_normalized_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                                    ConstTensorRef features, ConstTensorRef logits, TensorRef grad_features,
                                    TensorRef grad_logits, void* workspace) {
  const DeviceGuard guard(device.index);
  CudaExecutor executor(device);
  programs::reassemble_normalized_backward(problem, grad_output, features, logits, grad_features, grad_logits,
                                           workspace, executor);
}

int compiled_runtime_version() { return CUDART_VERSION; }

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) version = 0;
  return version;
}

}  // namespace cuda
}  // namespace carafe
