// The CPU backend against the scalar reference, with 1 and 3 threads (results must not depend on either).
#include <cmath>
#include <cstdio>

#include "cpu/row_kernels.h"

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

// The vectorized softmax of the fused normalizer: within a few ulp of a float64 softmax over the whole range of
// inputs, and NaN / -inf / +inf handled as std::exp would (NaN propagates, -inf gives probability 0).
int check_softmax() {
  const int count = 9;
  const int64_t len = 37;  // several vectors and a partial one
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> spread(-120.0f, 90.0f);
  std::vector<std::vector<float>> rows(count, std::vector<float>(size_t(len + carafe::cpu::kRowSlack)));
  for (auto& row : rows)
    for (int64_t x = 0; x < len; ++x) row[size_t(x)] = x < 20 ? spread(rng) * (x % 3 == 0 ? 1.0f : 0.05f) : float(x % 7) - 3;
  rows[2][30] = -INFINITY;
  rows[4][31] = NAN;
  const auto original = rows;
  std::vector<float*> pointers;
  for (auto& row : rows) pointers.push_back(row.data());
  std::vector<float> scratch(size_t(2 * len + carafe::cpu::kRowSlack));
  carafe::cpu::softmax_across_rows(pointers.data(), count, len, scratch.data());
  int failures = 0;
  for (int64_t x = 0; x < len; ++x) {
    double top = -INFINITY, sum = 0;
    bool nan = false;
    for (int t = 0; t < count; ++t) {
      nan |= std::isnan(original[t][size_t(x)]);
      top = std::max(top, double(original[t][size_t(x)]));
    }
    for (int t = 0; t < count; ++t) sum += std::exp(double(original[t][size_t(x)]) - top);
    for (int t = 0; t < count; ++t) {
      const double want = nan ? NAN : std::exp(double(original[t][size_t(x)]) - top) / sum;
      const double got = rows[t][size_t(x)];
      const bool ok = nan ? std::isnan(got) : std::fabs(got - want) <= 8e-7 * want + 1e-37;
      if (!ok && failures++ < 3) std::printf("    softmax[%d][%lld]: got %.9g, want %.9g\n", t, (long long)x, got, want);
    }
  }
  std::printf("vectorized softmax: %s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}

}  // namespace

int main() {
  CpuRunner serial(1), threaded(3);
  int failed = carafe_test::check_grid(serial, "cpu (1 thread)");
  failed += carafe_test::check_grid(threaded, "cpu (3 threads)");
  failed += check_thread_independence();
  failed += check_softmax();
  failed += carafe_test::check_empty_batch(carafe::Device{}, "cpu");
  return failed == 0 ? 0 : 1;
}
