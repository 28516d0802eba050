// CPU backend: every output element is computed by reassemble_elements.h; rows of elements are split
// over threads. Deterministic for any thread count: an element's value never depends on its thread.
#include "backends.h"
#include "cpu/parallel_for.h"
#include "dtype_dispatch.h"
#include "reassemble_elements.h"

namespace carafe {
namespace cpu {
namespace {

// Runs element(a, b, c, d) -> value for every element of an (A, B, C, D) grid and stores it into out,
// one (a, b, c) row of D elements per work item.
template <typename T, typename Element>
void fill(int64_t A, int64_t B, int64_t C, int64_t D, int64_t cost_per_element, const Device& device,
          TensorRef out, const Element& element) {
  T* const data = static_cast<T*>(out.data);
  const Strides s = out.strides;
  parallel_for(A * B * C, device.num_threads, D * cost_per_element, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Index4 i = unflatten(row * D, B, C, D);
      for (int64_t d = 0; d < D; ++d) data[element_offset(s, i.a, i.b, i.c, d)] = store<T>(element(i.a, i.b, i.c, d));
    }
  });
}

}  // namespace

void reassemble_forward(const Problem& problem, const Device& device, ConstTensorRef features,
                        ConstTensorRef masks, TensorRef output) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const Operands<T> m{static_cast<const T*>(masks.data), masks.strides};
    fill<T>(g.N, g.C, g.OH, g.OW, int64_t(g.k) * g.k, device, output,
            [&](int64_t n, int64_t c, int64_t oy, int64_t ox) { return forward_element(g, x, m, n, c, oy, ox); });
  });
}

void reassemble_backward(const Problem& problem, const Device& device, ConstTensorRef grad_output,
                         ConstTensorRef features, ConstTensorRef masks, TensorRef grad_features,
                         TensorRef grad_masks) {
  const Geometry g = Geometry::of(problem);
  dispatch_dtype(problem.dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    const Operands<T> dy{static_cast<const T*>(grad_output.data), grad_output.strides};
    const Operands<T> x{static_cast<const T*>(features.data), features.strides};
    const Operands<T> m{static_cast<const T*>(masks.data), masks.strides};
    fill<T>(g.N, g.C, g.H, g.W, int64_t(g.k) * g.k * g.sigma * g.sigma, device, grad_features,
            [&](int64_t n, int64_t c, int64_t h, int64_t w) { return grad_feature_element(g, dy, m, n, c, h, w); });
    fill<T>(g.N, int64_t(g.G) * g.k * g.k, g.OH, g.OW, g.channels_per_group, device, grad_masks,
            [&](int64_t n, int64_t mc, int64_t oy, int64_t ox) { return grad_mask_element(g, dy, x, n, mc, oy, ox); });
  });
}

}  // namespace cpu
}  // namespace carafe
