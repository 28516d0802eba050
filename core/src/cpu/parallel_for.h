// A static split of [0, count) over std::threads: no OpenMP, so no second OpenMP runtime beside the one
// PyTorch ships. Which thread computes an item never changes what the item's value is.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace carafe {
namespace cpu {

// Calls fn(begin, end) on disjoint chunks covering [0, count), on up to num_threads threads
// (0: all hardware threads). Splits only when there is enough work (items * cost_per_item) to pay for threads.
template <typename Fn>
void parallel_for(int64_t count, int num_threads, int64_t cost_per_item, const Fn& fn) {
  constexpr int64_t min_cost_per_thread = 1 << 16;
  int64_t threads = num_threads > 0 ? num_threads : int64_t(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, count);
  threads = std::min(threads, std::max<int64_t>(1, count * cost_per_item / min_cost_per_thread));
  if (threads <= 1) {
    if (count > 0) fn(int64_t(0), count);
    return;
  }
  const int64_t chunk = (count + threads - 1) / threads;
  std::vector<std::thread> workers;
  workers.reserve(size_t(threads - 1));
  int64_t begin = chunk;  // chunk 0 runs on the calling thread
  for (; begin < count; begin += chunk) {
    const int64_t end = std::min(count, begin + chunk);
    try {
      workers.emplace_back([&fn, begin, end] { fn(begin, end); });
    } catch (...) {  // no more threads available: do the rest here
      break;
    }
  }
  for (int64_t rest = begin; rest < count; rest += chunk) fn(rest, std::min(count, rest + chunk));
  fn(int64_t(0), std::min(count, chunk));
  for (auto& worker : workers) worker.join();
}

}  // namespace cpu
}  // namespace carafe
