// Index math at sizes beyond 2^31 elements: offsets and flat-index splits must not wrap.
#include <cstdio>

#include "carafe/index_math.h"

int main() {
  using namespace carafe;
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAIL %s\n", what);
      ++failures;
    }
  };
  // masks (1, 49, 6800, 6800) in NCHW: 2.27e9 elements
  const int64_t OH = 6800, OW = 6800, MC = 49;
  const Strides s{MC * OH * OW, OH * OW, OW, 1};
  const int64_t last = element_offset(s, 0, MC - 1, OH - 1, OW - 1);
  expect(last == MC * OH * OW - 1, "offset of the last element of a 2.27e9-element tensor");
  expect(last > (int64_t(1) << 31), "that offset is past 2^31");
  const Index4 idx = unflatten(last, MC, OH, OW);
  expect(idx.a == 0 && idx.b == MC - 1 && idx.c == OH - 1 && idx.d == OW - 1, "unflatten of that offset");
  // NHWC strides of a large feature map
  const Strides nhwc{OH * OW * 256, 1, OW * 256, 256};
  expect(element_offset(nhwc, 0, 255, OH - 1, OW - 1) == OH * OW * 256 - 1, "NHWC offset past 2^33");

  Problem p;
  p.batch = 1; p.channels = 8; p.height = 4; p.width = 6;
  p.kernel_size = 5; p.group_size = 2; p.scale_factor = 3;
  const Geometry g = Geometry::of(p);
  expect(g.r == 2 && g.OH == 12 && g.OW == 18 && g.channels_per_group == 4, "geometry");
  expect(tap_index(-2, -2, g) == 0 && tap_index(0, 0, g) == 12 && tap_index(2, 2, g) == 24, "tap indices");
  expect(mask_channel(group_of_channel(5, g), tap_index(0, 1, g), g) == 25 + 13, "mask channel of channel 5");
  expect(source_coord(8, 4, 12) == 2 && first_output_of(3, 4, 12) == 9, "source and first output, sigma 3");
  expect(source_coord(48, 25, 49) == 24 && first_output_of(24, 25, 49) == 48, "an FPN's 25 -> 49");
  // for any sizes, [first_output_of(i), first_output_of(i + 1)) are exactly the outputs whose source is i
  bool consistent = true;
  for (int64_t in = 1; in < 40; ++in)
    for (int64_t out = 1; out < 130; ++out)
      for (int64_t o = 0; o < out; ++o) {
        const int64_t i = source_coord(o, in, out);
        consistent &= i >= 0 && i < in && first_output_of(i, in, out) <= o && o < first_output_of(i + 1, in, out);
      }
  expect(consistent, "source_coord and first_output_of agree for every size pair");
  std::printf("index math: %s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}
