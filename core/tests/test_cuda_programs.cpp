// The CUDA backend's thread programs (src/cuda/thread_programs.h), run on the host: every GPU thread's work,
// thread by thread, against the scalar reference. This checks the CUDA kernels' index math, tiling, channel
// slicing and fused normalizer on machines without a GPU; test_cuda_backend checks the launches on a GPU.
#include <cstdio>
#include <limits>
#include <vector>

#include "backend_check.h"
#include "cuda/thread_programs.h"

namespace {

// Runs program(i) for every thread i, in order (the GPU runs them concurrently: each writes its own outputs).
struct HostExecutor {
  int64_t target_threads;
  template <typename Program>
  void operator()(const Program& program) const {
    const int64_t threads = program.threads();
    for (int64_t i = 0; i < threads; ++i) program(i);
  }
};

struct ProgramRunner : carafe_test::Runner {
  HostExecutor executor;
  explicit ProgramRunner(int64_t target_threads) : executor{target_threads} {}
  void forward(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& m,
               carafe_test::HostTensor& y) override {
    carafe::validate(p);
    carafe::programs::reassemble_forward(p, x.cref(), m.cref(), y.ref(), executor);
  }
  void backward(const carafe::Problem& p, const carafe_test::HostTensor& dy, const carafe_test::HostTensor& x,
                const carafe_test::HostTensor& m, carafe_test::HostTensor& dx, carafe_test::HostTensor& dm) override {
    carafe::programs::reassemble_backward(p, dy.cref(), x.cref(), m.cref(), dx.ref(), dm.ref(), executor);
  }
  bool normalized(const carafe::Problem& p, const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                  carafe_test::HostTensor& y) override {
    carafe::programs::reassemble_normalized_forward(p, x.cref(), l.cref(), y.ref(), executor);
    return true;
  }
  void normalized_backward(const carafe::Problem& p, const carafe_test::HostTensor& dy,
                           const carafe_test::HostTensor& x, const carafe_test::HostTensor& l,
                           carafe_test::HostTensor& dx, carafe_test::HostTensor& dl) override {
    // NaN-filled, so that a read of workspace nobody wrote shows up as a mismatch
    std::vector<double> workspace(size_t(carafe::programs::normalized_backward_workspace_bytes(p)) / sizeof(double) + 1,
                                  std::numeric_limits<double>::quiet_NaN());
    carafe::programs::reassemble_normalized_backward(p, dy.cref(), x.cref(), l.cref(), dx.ref(), dl.ref(),
                                                     workspace.data(), executor);
  }
};

// Tensors whose strides could overflow the tile programs' 32-bit offsets go to the element programs.
int check_offsets_fit() {
  carafe::Problem p;
  p.batch = 1; p.channels = 4; p.height = 3; p.width = 5; p.kernel_size = 5; p.scale_factor = 2;
  const carafe::Geometry g = carafe::Geometry::of(p);
  const int64_t row = int64_t(1) << 28;  // reach (k + 2) * 2 = 14 rows of 2^28 elements: past 2^31
  const bool small = carafe::programs::offsets_fit(g, {{60, 15, 5, 1}, {240, 60, 10, 1}});
  const bool large = carafe::programs::offsets_fit(g, {{60, 15, 5, 1}, {16 * row, 4 * row, row, 1}});
  std::printf("32-bit offsets: %s\n", small && !large ? "ok" : "FAIL (offsets_fit is wrong)");
  return small && !large ? 0 : 1;
}

}  // namespace

int main() {
  // one channel slice per group, and as many slices as the slicing allows
  ProgramRunner unsliced(1), sliced(int64_t(1) << 40);
  int failed = carafe_test::check_grid(unsliced, "cuda thread programs (unsliced)");
  failed += carafe_test::check_grid(sliced, "cuda thread programs (sliced)");
  failed += check_offsets_fit();
  return failed == 0 ? 0 : 1;
}
