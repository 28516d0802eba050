// The CPU backend against the scalar reference, with 1 and 3 threads (results must not depend on either).
#include <cstdio>

#include "backend_check.h"

namespace {

struct CpuRunner : carafe_test::Runner {
  carafe::Device device;
  explicit CpuRunner(int threads) { device.num_threads = threads; }
  void forward(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& m,
               carafe_test::HostTensor& y) override {
    carafe::reassemble_forward(p, device, x.cref(), m.cref(), y.ref());
  }
  void backward(const carafe::Problem& p, const carafe_test::HostTensor& dy, const carafe_test::HostTensor& x,
                const carafe_test::HostTensor& m, carafe_test::HostTensor& dx, carafe_test::HostTensor& dm) override {
    carafe::reassemble_backward(p, device, dy.cref(), x.cref(), m.cref(), dx.ref(), dm.ref());
  }
  bool normalized(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                  carafe_test::HostTensor& y) override {
    carafe::reassemble_normalized_forward(p, device, x.cref(), l.cref(), y.ref());
    return true;
  }
  void normalized_backward(const carafe::Problem& p, const carafe_test::HostTensor& dy,
                           const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                           carafe_test::HostTensor& dx, carafe_test::HostTensor& dl) override {
    carafe::reassemble_normalized_backward(p, device, dy.cref(), x.cref(), l.cref(), dx.ref(), dl.ref());
  }
};

// The thread count never changes a single bit of the result.
int check_thread_independence() {
  using namespace carafe_test;
  const Dims d{2, 8, 33, 35, 5, 2, 2};
  std::mt19937_64 rng(7);
  std::vector<double> unused;
  const HostTensor x = random_tensor(DType::Float32, d.N, d.C, d.H, d.W, Layout::NCHW, rng, unused);
  const HostTensor m = random_tensor(DType::Float32, d.N, d.MC(), d.OH(), d.OW(), Layout::NCHW, rng, unused);
  const HostTensor dy = random_tensor(DType::Float32, d.N, d.C, d.OH(), d.OW(), Layout::NCHW, rng, unused);
  carafe::Problem p;
  p.batch = d.N; p.channels = d.C; p.height = d.H; p.width = d.W;
  p.kernel_size = d.k; p.group_size = d.G; p.scale_factor = d.sigma;
  HostTensor y1(DType::Float32, d.N, d.C, d.OH(), d.OW(), Layout::NCHW), y4 = y1;
  HostTensor dx1(DType::Float32, d.N, d.C, d.H, d.W, Layout::NCHW), dx4 = dx1;
  HostTensor dm1(DType::Float32, d.N, d.MC(), d.OH(), d.OW(), Layout::NCHW), dm4 = dm1;
  CpuRunner one(1), four(4);
  one.forward(p, x, m, y1);
  four.forward(p, x, m, y4);
  one.backward(p, dy, x, m, dx1, dm1);
  four.backward(p, dy, x, m, dx4, dm4);
  const bool same = same_bytes(y1, y4) && same_bytes(dx1, dx4) && same_bytes(dm1, dm4);
  std::printf("thread independence: %s\n", same ? "ok" : "FAIL (1 and 4 threads differ)");
  return same ? 0 : 1;
}

}  // namespace

int main() {
  CpuRunner serial(1), threaded(3);
  int failed = carafe_test::check_grid(serial, "cpu (1 thread)");
  failed += carafe_test::check_grid(threaded, "cpu (3 threads)");
  failed += check_thread_independence();
  failed += carafe_test::check_empty_batch(carafe::Device{}, "cpu");
  return failed == 0 ? 0 : 1;
}
