// The CUDA backend against the scalar reference. Exits 77 (CTest: skipped) where no GPU is present.
#include <cuda_runtime.h>

#include <cstdio>
#include <stdexcept>

#include "backend_check.h"

namespace {

// A device copy of a HostTensor's whole buffer (gaps included), with the same strides.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t size = 0;
  explicit DeviceBuffer(const carafe_test::HostTensor& t) : size(t.bytes.size()) {
    if (cudaMalloc(&ptr, size) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
    if (cudaMemcpy(ptr, t.bytes.data(), size, cudaMemcpyHostToDevice) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy to device failed");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  void copy_to(carafe_test::HostTensor& t) const {
    if (cudaMemcpy(t.bytes.data(), ptr, size, cudaMemcpyDeviceToHost) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy to host failed");
  }
};

struct CudaRunner : carafe_test::Runner {
  carafe::Device device;
  cudaStream_t stream = nullptr;
  CudaRunner() {
    device.kind = carafe::DeviceKind::CUDA;
    cudaStreamCreate(&stream);
    device.stream = stream;
  }
  ~CudaRunner() override { cudaStreamDestroy(stream); }
  void forward(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& m,
               carafe_test::HostTensor& y) override {
    DeviceBuffer dx(x), dm(m), dyb(y);
    carafe::reassemble_forward(p, device, {dx.ptr, x.strides}, {dm.ptr, m.strides}, {dyb.ptr, y.strides});
    cudaStreamSynchronize(stream);
    dyb.copy_to(y);
  }
  void backward(const carafe::Problem& p, const carafe_test::HostTensor& dy, const carafe_test::HostTensor& x,
                const carafe_test::HostTensor& m, carafe_test::HostTensor& gx, carafe_test::HostTensor& gm) override {
    DeviceBuffer ddy(dy), dx(x), dm(m), dgx(gx), dgm(gm);
    carafe::reassemble_backward(p, device, {ddy.ptr, dy.strides}, {dx.ptr, x.strides}, {dm.ptr, m.strides},
                                {dgx.ptr, gx.strides}, {dgm.ptr, gm.strides});
    cudaStreamSynchronize(stream);
    dgx.copy_to(gx);
    dgm.copy_to(gm);
  }
  bool normalized(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                  carafe_test::HostTensor& y) override {
    DeviceBuffer dx(x), dl(l), dyb(y);
    carafe::reassemble_normalized_forward(p, device, {dx.ptr, x.strides}, {dl.ptr, l.strides}, {dyb.ptr, y.strides});
    cudaStreamSynchronize(stream);
    dyb.copy_to(y);
    return true;
  }
  void normalized_backward(const carafe::Problem& p, const carafe_test::HostTensor& dy,
                           const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                           carafe_test::HostTensor& gx, carafe_test::HostTensor& gl) override {
    DeviceBuffer ddy(dy), dx(x), dl(l), dgx(gx), dgl(gl);
    void* workspace = nullptr;
    const int64_t bytes = carafe::normalized_backward_workspace_bytes(p, device);
    if (bytes > 0 && cudaMalloc(&workspace, size_t(bytes)) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
    carafe::reassemble_normalized_backward(p, device, {ddy.ptr, dy.strides}, {dx.ptr, x.strides}, {dl.ptr, l.strides},
                                           {dgx.ptr, gx.strides}, {dgl.ptr, gl.strides}, workspace);
    cudaStreamSynchronize(stream);
    cudaFree(workspace);
    dgx.copy_to(gx);
    dgl.copy_to(gl);
  }
};

}  // namespace

int main() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  CudaRunner runner;
  return carafe_test::check_grid(runner, "cuda") == 0 ? 0 : 1;
}
