// Lock-free single-producer single-consumer ring (DESIGN.md "Threading rules"): power-of-two
// capacity, 64-bit monotonic read/write counters (never masked in storage, only for indexing),
// acquire/release ordering, each counter on its own cache line. Storage is allocated by the
// constructor (on the loop thread); push/pop never allocate, lock or make system calls.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "node/realtime.hpp"

namespace rtpnode {

template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>);
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

 public:
  /// `min_capacity` items, rounded up to a power of two. Thread: any (before sharing).
  explicit SpscRing(std::size_t min_capacity)
      : capacity_(std::bit_ceil(std::max<std::size_t>(min_capacity, 2))),
        mask_(capacity_ - 1),
        buf_(std::make_unique<T[]>(capacity_)) {}

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Producer thread only; wait-free. Copies up to `n` items; returns how many fit.
  RTPNODE_REALTIME std::size_t push(const T* items, std::size_t n) noexcept {
    const std::uint64_t w = write_.load(std::memory_order_relaxed);
    const std::uint64_t r = read_.load(std::memory_order_acquire);
    n = std::min<std::size_t>(n, capacity_ - static_cast<std::size_t>(w - r));
    copy_in(w, items, n);
    write_.store(w + n, std::memory_order_release);
    return n;
  }
  /// Producer thread only; wait-free. Pushes one item; false when full.
  RTPNODE_REALTIME bool push_one(const T& item) noexcept { return push(&item, 1) == 1; }

  /// Consumer thread only; wait-free. Copies up to `n` items out; returns how many.
  RTPNODE_REALTIME std::size_t pop(T* items, std::size_t n) noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);
    const std::uint64_t w = write_.load(std::memory_order_acquire);
    n = std::min<std::size_t>(n, static_cast<std::size_t>(w - r));
    copy_out(r, items, n);
    read_.store(r + n, std::memory_order_release);
    return n;
  }
  /// Consumer thread only; wait-free. Pops one item; false when empty.
  RTPNODE_REALTIME bool pop_one(T& item) noexcept { return pop(&item, 1) == 1; }

  /// Consumer thread only; wait-free. Discards up to `n` items; returns how many.
  RTPNODE_REALTIME std::size_t skip(std::size_t n) noexcept {
    const std::uint64_t r = read_.load(std::memory_order_relaxed);
    const std::uint64_t w = write_.load(std::memory_order_acquire);
    n = std::min<std::size_t>(n, static_cast<std::size_t>(w - r));
    read_.store(r + n, std::memory_order_release);
    return n;
  }

  /// Consumer: items ready to pop. Producer: a lower bound of items queued. Wait-free.
  [[nodiscard]] std::size_t size() const noexcept {
    return static_cast<std::size_t>(write_.load(std::memory_order_acquire) -
                                    read_.load(std::memory_order_acquire));
  }
  /// Producer thread: items that can be pushed now (a lower bound). Wait-free.
  [[nodiscard]] std::size_t free_space() const noexcept { return capacity_ - size(); }
  /// Monotonic counters: total items ever pushed / popped. Any thread; wait-free.
  [[nodiscard]] std::uint64_t write_count() const noexcept {
    return write_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::uint64_t read_count() const noexcept {
    return read_.load(std::memory_order_acquire);
  }

 private:
  void copy_in(std::uint64_t pos, const T* items, std::size_t n) noexcept {
    const std::size_t i = static_cast<std::size_t>(pos) & mask_;
    const std::size_t first = std::min(n, capacity_ - i);
    std::copy_n(items, first, buf_.get() + i);
    if (n > first) std::copy_n(items + first, n - first, buf_.get());
  }
  void copy_out(std::uint64_t pos, T* items, std::size_t n) const noexcept {
    const std::size_t i = static_cast<std::size_t>(pos) & mask_;
    const std::size_t first = std::min(n, capacity_ - i);
    std::copy_n(buf_.get() + i, first, items);
    if (n > first) std::copy_n(buf_.get(), n - first, items + first);
  }

  const std::size_t capacity_;
  const std::size_t mask_;
  std::unique_ptr<T[]> buf_;
  alignas(64) std::atomic<std::uint64_t> write_{0};
  alignas(64) std::atomic<std::uint64_t> read_{0};
};

}  // namespace rtpnode
