// Compares a backend with scalar_reference.h over a grid of problems, dtypes and memory layouts.
// A backend is a Runner working on host-side buffers (the CUDA runner copies them to the device and back).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

#include "carafe/carafe.h"
#include "carafe/index_math.h"
#include "carafe/scalar_types.h"
#include "dtype_dispatch.h"
#include "scalar_reference.h"

namespace carafe_test {

using carafe::DType;
using carafe::Strides;

enum class Layout { NCHW, NHWC, Padded };  // Padded: NCHW with gaps after every row and plane (a view)

inline const char* layout_name(Layout l) { return l == Layout::NCHW ? "NCHW" : l == Layout::NHWC ? "NHWC" : "padded"; }

inline size_t dtype_size(DType t) { return t == DType::Float64 ? 8 : t == DType::Float32 ? 4 : 2; }

// Unit roundoff of a dtype.
inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::Float64: return std::ldexp(1.0, -53);
    case DType::Float32: return std::ldexp(1.0, -24);
    case DType::Float16: return std::ldexp(1.0, -11);
    case DType::BFloat16: return std::ldexp(1.0, -8);
  }
  return 1;
}

// A 4-d tensor in host memory with arbitrary element strides.
struct HostTensor {
  DType dtype;
  int64_t sizes[4];
  Strides strides;
  std::vector<unsigned char> bytes;

  HostTensor(DType t, int64_t n, int64_t c, int64_t h, int64_t w, Layout layout) : dtype(t), sizes{n, c, h, w} {
    if (layout == Layout::NHWC) {
      strides = {h * w * c, 1, w * c, c};
    } else {
      const int64_t row = layout == Layout::Padded ? w + 3 : w;
      const int64_t plane = layout == Layout::Padded ? row * h + 5 : row * h;
      strides = {plane * c, plane, row, 1};
    }
    const int64_t last = (n - 1) * strides.n + (c - 1) * strides.c + (h - 1) * strides.h + (w - 1) * strides.w;
    bytes.assign(size_t(last + 1) * dtype_size(t), 0xff);  // 0xff..: NaN in every dtype, so gaps never pass as data
  }
  int64_t numel() const { return sizes[0] * sizes[1] * sizes[2] * sizes[3]; }
  int64_t offset(int64_t i) const {  // i-th element in NCHW order
    const carafe::Index4 idx = carafe::unflatten(i, sizes[1], sizes[2], sizes[3]);
    return carafe::element_offset(strides, idx.a, idx.b, idx.c, idx.d);
  }
  // Stores v rounded to the dtype; returns the value actually stored.
  double set(int64_t i, double v) {
    double stored = 0;
    carafe::dispatch_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      T* p = reinterpret_cast<T*>(bytes.data()) + offset(i);
      *p = carafe::store<T>(carafe::accumulate_t<T>(v));
      stored = double(carafe::load(*p));
    });
    return stored;
  }
  double get(int64_t i) const {
    double v = 0;
    carafe::dispatch_dtype(dtype, [&](auto tag) {
      using T = decltype(tag);
      v = double(carafe::load(reinterpret_cast<const T*>(bytes.data())[offset(i)]));
    });
    return v;
  }
  std::vector<double> to_dense() const {
    std::vector<double> out(static_cast<size_t>(numel()));
    for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = get(i);
    return out;
  }
  carafe::ConstTensorRef cref() const { return {bytes.data(), strides}; }
  carafe::TensorRef ref() { return {bytes.data(), strides}; }
};

struct Runner {
  virtual ~Runner() = default;
  virtual void forward(const carafe::Problem& p, const HostTensor& x, const HostTensor& m, HostTensor& y) = 0;
  virtual void backward(const carafe::Problem& p, const HostTensor& dy, const HostTensor& x, const HostTensor& m,
                        HostTensor& dx, HostTensor& dm) = 0;
  // the fused kernel normalizer (masks made from the content encoder's logits); false where not implemented
  virtual bool normalized(const carafe::Problem&, const HostTensor&, const HostTensor&, HostTensor&) { return false; }
  virtual void normalized_backward(const carafe::Problem&, const HostTensor&, const HostTensor&, const HostTensor&,
                                   HostTensor&, HostTensor&) {}
};

inline HostTensor random_tensor(DType t, int64_t n, int64_t c, int64_t h, int64_t w, Layout layout,
                                std::mt19937_64& rng, std::vector<double>& dense) {
  HostTensor tensor(t, n, c, h, w, layout);
  std::normal_distribution<double> normal(0.0, 1.0);
  dense.resize(size_t(tensor.numel()));
  for (int64_t i = 0; i < tensor.numel(); ++i) dense[size_t(i)] = tensor.set(i, normal(rng));
  return tensor;
}

// Spacing of the dtype's subnormals: the absolute error of rounding a tiny result.
inline double subnormal_spacing(DType t) {
  switch (t) {
    case DType::Float64: return std::ldexp(1.0, -1074);
    case DType::Float32: return std::ldexp(1.0, -149);
    case DType::Float16: return std::ldexp(1.0, -24);
    case DType::BFloat16: return std::ldexp(1.0, -133);
  }
  return 1;
}

// |got - want| <= tolerance per element; the tolerance scales with sum |terms| (the error bound of a sum of
// rounded products accumulated in float32 / float64) plus the final rounding to the dtype.
inline int compare(const char* what, const HostTensor& got, const std::vector<double>& want,
                   const std::vector<double>& abs_terms, DType t) {
  const double accumulate_eps = t == DType::Float64 ? std::ldexp(1.0, -53) : std::ldexp(1.0, -24);
  int failures = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.get(i), w = want[size_t(i)];
    const double tol = 4 * unit_roundoff(t) * std::fabs(w) + 64 * accumulate_eps * abs_terms[size_t(i)] +
                       subnormal_spacing(t);
    if (!(std::fabs(g - w) <= tol)) {
      if (failures < 3) std::printf("    %s[%lld]: got %.10g, want %.10g (tolerance %.3g)\n", what, (long long)i, g, w, tol);
      ++failures;
    }
  }
  return failures;
}

inline bool same_bytes(const HostTensor& a, const HostTensor& b) { return a.bytes == b.bytes; }

inline void print_case(const char* prefix, const Dims& d, DType t, Layout layout) {
  std::printf("%sN=%lld C=%lld H=%lld W=%lld k=%d G=%d sigma=%d out=%lldx%lld %s %s", prefix, (long long)d.N,
              (long long)d.C, (long long)d.H, (long long)d.W, d.k, d.G, d.sigma, (long long)d.OH(), (long long)d.OW(),
              carafe::dtype_name(t), layout_name(layout));
}

// Runs one case; an exception (a CUDA error, say) is reported with the case it happened in, then rethrown:
// after a device fault nothing later can be trusted.
template <typename Check>
int run_case(Check check, const char* what, const Dims& d, DType t, Layout layout) {
  try {
    return check();
  } catch (const std::exception& e) {
    print_case(what, d, t, layout);
    std::printf(": %s\n", e.what());
    throw;
  }
}

// One problem: forward and backward against the reference, and backward run twice bit-identical.
inline int check_case(Runner& runner, const Dims& d, DType t, Layout layout, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> xd, md, dyd;
  const HostTensor x = random_tensor(t, d.N, d.C, d.H, d.W, layout, rng, xd);
  const HostTensor m = random_tensor(t, d.N, d.MC(), d.OH(), d.OW(), layout, rng, md);
  const HostTensor dy = random_tensor(t, d.N, d.C, d.OH(), d.OW(), layout, rng, dyd);
  carafe::Problem p;
  p.batch = d.N; p.channels = d.C; p.height = d.H; p.width = d.W;
  p.kernel_size = d.k; p.group_size = d.G; p.scale_factor = d.sigma; p.dtype = t;
  p.output_height = d.out_h; p.output_width = d.out_w;

  HostTensor y(t, d.N, d.C, d.OH(), d.OW(), layout);
  runner.forward(p, x, m, y);
  std::vector<double> y_abs, dx_want, dm_want, dx_abs, dm_abs;
  const std::vector<double> y_want = forward(d, xd, md, &y_abs);
  backward(d, dyd, xd, md, dx_want, dm_want, dx_abs, dm_abs);

  HostTensor dx(t, d.N, d.C, d.H, d.W, layout), dm(t, d.N, d.MC(), d.OH(), d.OW(), layout);
  runner.backward(p, dy, x, m, dx, dm);
  HostTensor dx2(t, d.N, d.C, d.H, d.W, layout), dm2(t, d.N, d.MC(), d.OH(), d.OW(), layout);
  runner.backward(p, dy, x, m, dx2, dm2);

  int failures = compare("output", y, y_want, y_abs, t) + compare("grad_features", dx, dx_want, dx_abs, t) +
                 compare("grad_masks", dm, dm_want, dm_abs, t);
  if (!same_bytes(dx, dx2) || !same_bytes(dm, dm2)) {
    std::printf("    backward is not deterministic\n");
    ++failures;
  }
  if (failures) {
    print_case("FAIL ", d, t, layout);
    std::printf(": %d mismatches\n", failures);
  }
  return failures;
}

// The fused kernel normalizer against normalize_logits + the scalar reference: forward and both gradients.
// Returns -1 when the runner does not implement it.
inline int check_normalized_case(Runner& runner, const Dims& d, DType t, Layout layout, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> xd, ld, dyd;
  const int64_t s = d.sigma;
  const HostTensor x = random_tensor(t, d.N, d.C, d.H, d.W, layout, rng, xd);
  const HostTensor logits = random_tensor(t, d.N, d.MC() * s * s, d.H, d.W, layout, rng, ld);
  const HostTensor dy = random_tensor(t, d.N, d.C, d.OH(), d.OW(), layout, rng, dyd);
  carafe::Problem p;
  p.batch = d.N; p.channels = d.C; p.height = d.H; p.width = d.W;
  p.kernel_size = d.k; p.group_size = d.G; p.scale_factor = d.sigma; p.dtype = t;
  HostTensor y(t, d.N, d.C, d.OH(), d.OW(), layout);
  if (!runner.normalized(p, x, logits, y)) return -1;
  const std::vector<double> md = normalize_logits(d, ld);
  std::vector<double> y_abs, dx_want, dm_want, dx_abs, dm_abs;
  const std::vector<double> y_want = forward(d, xd, md, &y_abs);
  backward(d, dyd, xd, md, dx_want, dm_want, dx_abs, dm_abs);
  const std::vector<double> dl_want = normalize_backward(d, md, dm_want);
  // the logits' gradient is bounded by the mask gradient's scale (softmax Jacobian entries are at most 1)
  std::vector<double> dl_abs(dl_want.size(), 0.0);
  double dm_scale = 0;
  for (double v : dm_abs) dm_scale = v > dm_scale ? v : dm_scale;
  for (auto& v : dl_abs) v = 2 * dm_scale;
  HostTensor dx(t, d.N, d.C, d.H, d.W, layout), dl(t, d.N, d.MC() * s * s, d.H, d.W, layout);
  runner.normalized_backward(p, dy, x, logits, dx, dl);
  const int failures = compare("normalized output", y, y_want, y_abs, t) +
                       compare("normalized grad_features", dx, dx_want, dx_abs, t) +
                       compare("normalized grad_logits", dl, dl_want, dl_abs, t);
  if (failures) {
    print_case("FAIL normalized ", d, t, layout);
    std::printf("\n");
  }
  return failures;
}

// The grid of the operator issue: k in {1,3,5,7}, G in {1,2,4}, sigma in {1,2,3,4}, odd and even sizes,
// batch 1 and 2, every dtype and layout. Returns the number of failed cases. every > 1 runs every every-th
// case only (the same seeds as the whole grid), for slow runners such as a GPU under compute-sanitizer.
inline int check_grid(Runner& runner, const char* backend, int every = 1) {
  int failed = 0, cases = 0, visited = 0;
  uint64_t seed = 1;
  const auto selected = [&] { return visited++ % every == 0; };
  const DType dtypes[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16};
  const Layout layouts[] = {Layout::NCHW, Layout::NHWC, Layout::Padded};
  for (int k : {1, 3, 5, 7})
    for (int G : {1, 2, 4})
      for (int sigma : {1, 2, 3, 4}) {
        // alternate odd / even sizes and batch 1 / 2 across the grid, and every dtype and layout
        const bool odd = (k + G + sigma) % 2 == 1;
        const Dims d{odd ? 1 : 2, int64_t(G) * (odd ? 3 : 2), odd ? 5 : 4, odd ? 7 : 6, k, G, sigma};
        for (DType t : dtypes)
          for (Layout layout : layouts) {
            const uint64_t case_seed = seed++;
            if (!selected()) continue;
            ++cases;
            if (run_case([&] { return check_case(runner, d, t, layout, case_seed); }, "ERROR in ", d, t, layout)) ++failed;
          }
      }
  // rows longer than a SIMD block plus a partial vector, and more channels per group than the CPU backend
  // holds at once, so that every code path of the row kernels runs
  // and output sizes other than sigma * input: an FPN's 2H - 1 (phase path), sizes without phase structure
  // (per-element path), and an output smaller than the input
  const Dims wide[] = {{2, 72, 5, 45, 5, 1, 2},       {1, 40, 3, 70, 7, 4, 4},       {1, 66, 4, 33, 3, 2, 3},
                       {2, 6, 5, 7, 5, 2, 2, 9, 13},   {1, 4, 5, 38, 3, 1, 2, 10, 75}, {1, 6, 4, 6, 3, 3, 3, 11, 17},
                       {1, 4, 6, 7, 5, 2, 2, 4, 5},    {1, 36, 5, 40, 5, 1, 2, 9, 79}, {1, 36, 5, 40, 5, 1, 2, 9, 70},
                       {1, 6, 5, 6, 9, 2, 2}};  // k 9: the CUDA backend's element programs
  for (const Dims& d : wide)
    for (DType t : dtypes)
      for (Layout layout : layouts) {
        const uint64_t case_seed = seed++;
        if (!selected()) continue;
        ++cases;
        if (run_case([&] { return check_case(runner, d, t, layout, case_seed); }, "ERROR in ", d, t, layout)) ++failed;
      }
  // the fused kernel normalizer over the same grid (default output size only), where the backend has it
  int normalized_cases = 0, normalized_failed = 0;
  for (int k : {1, 3, 5, 7, 9})
    for (int G : {1, 2, 4})
      for (int sigma : {1, 2, 3, 4}) {
        const bool odd = (k + G + sigma) % 2 == 1;
        const Dims d{odd ? 1 : 2, int64_t(G) * (odd ? 3 : 34), odd ? 5 : 4, odd ? 7 : 37, k, G, sigma};
        for (DType t : dtypes) {
          const uint64_t case_seed = seed++;
          if (!selected()) continue;
          const Layout layout = layouts[(k + sigma) % 3];
          const int result = run_case([&] { return check_normalized_case(runner, d, t, layout, case_seed); },
                                      "ERROR in normalized ", d, t, layout);
          if (result < 0) continue;
          ++normalized_cases;
          if (result) ++normalized_failed;
        }
      }
  std::printf("%s backend: %d of %d cases agree with the scalar reference; fused normalizer: %d of %d\n", backend,
              cases - failed, cases, normalized_cases - normalized_failed, normalized_cases);
  return failed + normalized_failed;
}

// An empty batch (N = 0: a mask head on an image without detections) is valid: every op returns without
// touching memory, so null data pointers are fine, and the fused backward needs no workspace.
inline int check_empty_batch(const carafe::Device& device, const char* backend) {
  carafe::Problem p;
  p.batch = 0; p.channels = 4; p.height = 3; p.width = 5; p.kernel_size = 3; p.group_size = 2; p.scale_factor = 2;
  const Strides s{0, 15, 5, 1};
  const carafe::ConstTensorRef in{nullptr, s};
  const carafe::TensorRef out{nullptr, s};
  try {
    carafe::reassemble_forward(p, device, in, in, out);
    carafe::reassemble_backward(p, device, in, in, in, out, out);
    carafe::reassemble_normalized_forward(p, device, in, in, out);
    const int64_t workspace = carafe::normalized_backward_workspace_bytes(p, device);
    carafe::reassemble_normalized_backward(p, device, in, in, in, out, out, nullptr);
    if (workspace != 0) {
      std::printf("%s empty batch: FAIL (workspace of %lld bytes)\n", backend, (long long)workspace);
      return 1;
    }
  } catch (const std::exception& e) {
    std::printf("%s empty batch: FAIL (%s)\n", backend, e.what());
    return 1;
  }
  std::printf("%s empty batch: ok\n", backend);
  return 0;
}

}  // namespace carafe_test
