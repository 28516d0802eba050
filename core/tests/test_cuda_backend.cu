// The CUDA backend against the scalar reference, on a GPU.
//
// Exits 77 (CTest: skipped) only where there is no GPU at all (cudaErrorNoDevice, or no driver); any other
// failure to reach the GPU, an old driver say, is a failure named by its CUDA error.
//
// Every op runs on a non-blocking stream whose work starts behind a spin kernel, with the copies in and out
// queued on that same stream: an op that launched on any other stream would read its inputs before they
// arrive, or be read back before it finished, and fail the comparison. Every CUDA call is checked, and an
// error is reported with the case it happened in.
//
//   test_cuda_backend            the whole grid
//   test_cuda_backend --every N  every N-th case of it (for compute-sanitizer runs)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend_check.h"

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                             ")");
}

// Keeps the stream busy for about `cycles` clock cycles, so that whatever is queued behind it starts late.
__global__ void spin(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// A device buffer the size of a HostTensor's whole buffer (gaps included), poisoned with 0xff bytes (NaN in
// every dtype) before anything is queued, so that reading it before the upload shows as a mismatch.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t size = 0;
  explicit DeviceBuffer(size_t bytes) : size(bytes) {
    check(cudaMalloc(&ptr, size), "cudaMalloc");
    check(cudaMemset(ptr, 0xff, size), "cudaMemset");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct CudaRunner : carafe_test::Runner {
  carafe::Device device;
  cudaStream_t stream = nullptr;
  static constexpr long long spin_cycles = 100000;  // about 50 microseconds at 2 GHz

  CudaRunner() {
    device.kind = carafe::DeviceKind::CUDA;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    device.stream = stream;
  }
  ~CudaRunner() override { cudaStreamDestroy(stream); }

  // Allocates and poisons a device buffer per tensor (inputs then outputs), starts the stream with the spin,
  // uploads the inputs on it, runs op, downloads the outputs on it and waits for the stream alone.
  template <typename Op>
  void run(std::initializer_list<const carafe_test::HostTensor*> inputs,
           std::initializer_list<carafe_test::HostTensor*> outputs, size_t workspace_bytes, Op op) {
    std::vector<std::unique_ptr<DeviceBuffer>> in, out;
    for (const auto* t : inputs) in.push_back(std::make_unique<DeviceBuffer>(t->bytes.size()));
    for (auto* t : outputs) out.push_back(std::make_unique<DeviceBuffer>(t->bytes.size()));
    std::unique_ptr<DeviceBuffer> workspace;
    if (workspace_bytes > 0) workspace = std::make_unique<DeviceBuffer>(workspace_bytes);
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after allocation)");
    spin<<<1, 1, 0, stream>>>(spin_cycles);
    check(cudaGetLastError(), "spin kernel launch");
    size_t i = 0;
    for (const auto* t : inputs) {
      check(cudaMemcpyAsync(in[i]->ptr, t->bytes.data(), t->bytes.size(), cudaMemcpyHostToDevice, stream),
            "cudaMemcpyAsync to device");
      ++i;
    }
    std::vector<void*> in_ptrs, out_ptrs;
    for (auto& b : in) in_ptrs.push_back(b->ptr);
    for (auto& b : out) out_ptrs.push_back(b->ptr);
    op(in_ptrs, out_ptrs, workspace ? workspace->ptr : nullptr);
    i = 0;
    for (auto* t : outputs) {
      check(cudaMemcpyAsync(t->bytes.data(), out[i]->ptr, t->bytes.size(), cudaMemcpyDeviceToHost, stream),
            "cudaMemcpyAsync to host");
      ++i;
    }
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    check(cudaGetLastError(), "after the op");
  }

  void forward(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& m,
               carafe_test::HostTensor& y) override {
    run({&x, &m}, {&y}, 0, [&](auto& in, auto& out, void*) {
      carafe::reassemble_forward(p, device, {in[0], x.strides}, {in[1], m.strides}, {out[0], y.strides});
    });
  }
  void backward(const carafe::Problem& p, const carafe_test::HostTensor& dy, const carafe_test::HostTensor& x,
                const carafe_test::HostTensor& m, carafe_test::HostTensor& gx, carafe_test::HostTensor& gm) override {
    run({&dy, &x, &m}, {&gx, &gm}, 0, [&](auto& in, auto& out, void*) {
      carafe::reassemble_backward(p, device, {in[0], dy.strides}, {in[1], x.strides}, {in[2], m.strides},
                                  {out[0], gx.strides}, {out[1], gm.strides});
    });
  }
  bool normalized(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                  carafe_test::HostTensor& y) override {
    run({&x, &l}, {&y}, 0, [&](auto& in, auto& out, void*) {
      carafe::reassemble_normalized_forward(p, device, {in[0], x.strides}, {in[1], l.strides}, {out[0], y.strides});
    });
    return true;
  }
  void normalized_backward(const carafe::Problem& p, const carafe_test::HostTensor& dy,
                           const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                           carafe_test::HostTensor& gx, carafe_test::HostTensor& gl) override {
    const size_t workspace = size_t(carafe::normalized_backward_workspace_bytes(p, device));
    run({&dy, &x, &l}, {&gx, &gl}, workspace, [&](auto& in, auto& out, void* ws) {
      carafe::reassemble_normalized_backward(p, device, {in[0], dy.strides}, {in[1], x.strides}, {in[2], l.strides},
                                             {out[0], gx.strides}, {out[1], gl.strides}, ws);
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  int every = 1;
  if (argc == 3 && std::strcmp(argv[1], "--every") == 0) every = std::atoi(argv[2]);
  if (every < 1 || (argc != 1 && argc != 3)) {
    std::fprintf(stderr, "usage: %s [--every N]\n", argv[0]);
    return 2;
  }
  int driver = 0;
  cudaDriverGetVersion(&driver);
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorNoDevice || driver == 0 || (status == cudaSuccess && count == 0)) {
    std::printf("no CUDA device (%s, driver version %d): skipped\n", cudaGetErrorName(status), driver);
    return 77;
  }
  try {
    check(status, "cudaGetDeviceCount");
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s (sm_%d%d), driver %d, runtime %d%s\n", prop.name, prop.major, prop.minor, driver,
                CUDART_VERSION, every > 1 ? (", every " + std::to_string(every) + "th case").c_str() : "");
    CudaRunner runner;
    int failed = carafe_test::check_grid(runner, "cuda", every);
    failed += carafe_test::check_empty_batch(runner.device, "cuda");
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (at the end)");
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
