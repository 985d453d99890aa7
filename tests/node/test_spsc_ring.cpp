#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "node/spsc_ring.hpp"

using namespace rtpnode;

TEST(SpscRing, RoundsCapacityToPowerOfTwoAndStopsWhenFull) {
  SpscRing<int> r(5);
  EXPECT_EQ(r.capacity(), 8u);
  const std::vector<int> in{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(r.push(in.data(), in.size()), 8u);
  EXPECT_EQ(r.free_space(), 0u);
  std::vector<int> out(10);
  EXPECT_EQ(r.pop(out.data(), 10), 8u);
  EXPECT_EQ(out[7], 8);
  EXPECT_EQ(r.pop(out.data(), 1), 0u);
}

TEST(SpscRing, WrapsAroundKeepingOrder) {
  SpscRing<int> r(4);
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    std::vector<int> in{next_in, next_in + 1, next_in + 2};
    ASSERT_EQ(r.push(in.data(), 3), 3u);
    next_in += 3;
    std::vector<int> out(3);
    ASSERT_EQ(r.pop(out.data(), 3), 3u);
    for (int v : out) EXPECT_EQ(v, next_out++);
  }
  EXPECT_EQ(r.write_count(), 300u);
  EXPECT_EQ(r.read_count(), 300u);
}

TEST(SpscRing, SkipDiscardsOnlyWhatIsThere) {
  SpscRing<int> r(8);
  const int in[] = {1, 2, 3};
  r.push(in, 3);
  EXPECT_EQ(r.skip(5), 3u);
  EXPECT_EQ(r.size(), 0u);
}

TEST(SpscRing, TwoThreadsTransferEverythingInOrder) {
  SpscRing<std::uint64_t> r(64);
  constexpr std::uint64_t kItems = 2'000'000;
  std::thread producer([&] {
    std::uint64_t next = 0;
    std::uint64_t batch[7];
    while (next < kItems) {
      std::size_t n = 0;
      for (; n < 7 && next + n < kItems; ++n) batch[n] = next + n;
      const std::size_t pushed = r.push(batch, n);
      next += pushed;
      if (pushed == 0) std::this_thread::yield();
    }
  });
  std::uint64_t expect = 0;
  bool ordered = true;
  std::uint64_t buf[5];
  while (expect < kItems) {
    const std::size_t n = r.pop(buf, 5);
    for (std::size_t i = 0; i < n; ++i) ordered &= buf[i] == expect++;
    if (n == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(ordered);  // no loss, no duplication, order kept
  EXPECT_EQ(expect, kItems);
  EXPECT_EQ(r.size(), 0u);
}
