// float16 / bfloat16 conversions: exact round trips, and round-to-nearest-even from float32.
#include <cmath>
#include <cstdio>
#include <random>

#include "carafe/scalar_types.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what, unsigned value) {
  if (!ok && failures++ < 10) std::printf("FAIL %s (0x%08x)\n", what, value);
}

bool is_nan_half(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

// The nearest of the two storage values around f, ties to the even one, computed from their float values.
template <typename ToFloat>
uint16_t nearest_even(float f, uint16_t below, ToFloat to_float) {
  const uint16_t above = uint16_t(below + 1);
  const double lo = to_float(below), hi = to_float(above), v = f;
  const double dlo = std::fabs(v - lo), dhi = std::fabs(hi - v);
  if (dlo < dhi) return below;
  if (dhi < dlo) return above;
  return (below & 1u) ? above : below;
}

}  // namespace

int main() {
  using namespace carafe;
  // every float16 value survives float16 -> float32 -> float16
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_bits_to_float(uint16_t(h));
    if (is_nan_half(uint16_t(h))) {
      expect(std::isnan(f), "float16 NaN stays NaN", h);
    } else {
      expect(float_to_half_bits(f) == h, "float16 round trip", h);
    }
    expect(float_to_bfloat16_bits(bfloat16_bits_to_float(uint16_t(h))) == h || std::isnan(bfloat16_bits_to_float(uint16_t(h))),
           "bfloat16 round trip", h);
  }
  // float32 -> 16-bit rounds to the nearest value, ties to even, over random bit patterns of finite floats
  // inside each format's normal range
  std::mt19937 rng(3);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t bits = rng();
    const float f = bits_float(bits);
    if (!std::isfinite(f)) continue;
    const uint16_t b = float_to_bfloat16_bits(f);
    const uint16_t b_trunc = uint16_t(bits >> 16);
    if ((b_trunc & 0x7f80u) != 0x7f00u)  // not next to the largest bfloat16 (rounds to inf)
      expect(b == nearest_even(f, b_trunc, bfloat16_bits_to_float), "bfloat16 rounding", bits);
    const float a = std::fabs(f);
    if (a >= 6.103515625e-05f && a < 65504.0f) {  // float16 normal range
      const uint16_t h = float_to_half_bits(f);
      // the float16 value at or below |f|, with f's sign
      const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
      const uint16_t below = uint16_t(sign | (((bits & 0x7fffffffu) - 0x38000000u) >> 13));
      expect(h == nearest_even(f, below, half_bits_to_float), "float16 rounding", bits);
    }
  }
  expect(float_to_half_bits(1e6f) == 0x7c00u, "float16 overflow to inf", 0);
  expect(float_to_half_bits(-1e-9f) == 0x8000u, "float16 underflow to -0", 0);
  expect(half_bits_to_float(0x0001u) == std::ldexp(1.0f, -24), "smallest float16 subnormal", 1);
  expect(std::isnan(bfloat16_bits_to_float(float_to_bfloat16_bits(std::nanf("")))), "bfloat16 NaN", 0);
  std::printf("scalar types: %s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}
