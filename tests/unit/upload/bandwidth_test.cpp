// The shared bandwidth budget, with time passed in: no sleeping.
#include "upload/bandwidth.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

using namespace std::chrono_literals;
using TimePoint = TokenBucket::TimePoint;

const TimePoint kStart{std::chrono::hours(1)};

TEST(TokenBucket, UnlimitedGrantsEverything) {
  TokenBucket bucket(0, kStart);
  EXPECT_TRUE(bucket.unlimited());
  const auto grant = bucket.take(1U << 30U, kStart);
  EXPECT_EQ(grant.bytes, 1U << 30U);
  EXPECT_EQ(grant.wait, 0ns);
}

TEST(TokenBucket, StartsWithABurstThenWaits) {
  TokenBucket bucket(1'000'000, kStart);  // 1 MB/s: a 50 ms burst is 50 kB
  EXPECT_EQ(bucket.capacity(), 50'000);
  EXPECT_EQ(bucket.take(1'000'000, kStart).bytes, 50'000U);
  const auto empty = bucket.take(1'000'000, kStart);
  EXPECT_EQ(empty.bytes, 0U);
  EXPECT_EQ(empty.wait, std::chrono::nanoseconds(16'384'000)) << "until one record's worth (16 KiB) is there";
  EXPECT_EQ(bucket.take(1'000'000, kStart + 16'384us).bytes, 16'384U);
}

TEST(TokenBucket, SmallWantsAreGrantedWithoutWaitingForARecord) {
  TokenBucket bucket(1'000'000, kStart);
  (void)bucket.take(50'000, kStart);
  EXPECT_EQ(bucket.take(100, kStart + 100us).bytes, 100U);
  EXPECT_EQ(bucket.take(100, kStart + 100us).bytes, 0U);
}

TEST(TokenBucket, LongRunRateIsTheCapPlusOneBurst) {
  TokenBucket bucket(2'000'000, kStart);
  std::uint64_t sent = 0;
  TimePoint now = kStart;
  // Three sessions asking in turn, each moving time forward by what it was told to wait.
  for (int i = 0; i < 100000 && now < kStart + 10s; ++i) {
    const auto grant = bucket.take(256 * 1024, now);
    sent += grant.bytes;
    now += grant.bytes == 0 ? std::chrono::duration_cast<TimePoint::duration>(grant.wait) : 0ns;
  }
  const double seconds = std::chrono::duration<double>(now - kStart).count();
  EXPECT_GE(seconds, 10.0);
  EXPECT_LE(static_cast<double>(sent), 2'000'000 * seconds + bucket.capacity());
  EXPECT_GE(static_cast<double>(sent), 2'000'000 * seconds - 2 * 16384.0);
}

TEST(TokenBucket, IdleTimeDoesNotAccumulateBeyondTheBurst) {
  TokenBucket bucket(1'000'000, kStart);
  (void)bucket.take(50'000, kStart);
  EXPECT_EQ(bucket.take(10'000'000, kStart + 1h).bytes, 50'000U);
}

TEST(TokenBucket, LowRatesStillGrantWholeRecords) {
  TokenBucket bucket(1'000, kStart);  // the burst floor is one record
  EXPECT_EQ(bucket.capacity(), 16384);
  EXPECT_EQ(bucket.take(100'000, kStart).bytes, 16384U);
  EXPECT_EQ(bucket.take(100'000, kStart).wait, 16384ms);
}

TEST(TokenBucket, FastCapsWaitForMoreThanOneRecord) {
  // 256 MiB/s: a waiting session waits for 256 KiB (about 1 ms), not for each 16 KiB record
  // (61 us), so a capped multi-GiB upload wakes the loop ~1,000 times a second, not 16,000.
  constexpr std::uint64_t rate = 256ULL * 1024 * 1024;
  TokenBucket bucket(rate, kStart);
  (void)bucket.take(1U << 30U, kStart);  // the burst
  const auto empty = bucket.take(1U << 30U, kStart);
  EXPECT_EQ(empty.bytes, 0U);
  EXPECT_GT(empty.wait, 976us) << "256 KiB at 256 MiB/s";
  EXPECT_LT(empty.wait, 977us);
  EXPECT_EQ(bucket.take(1U << 30U, kStart + empty.wait).bytes, 256U * 1024U);
  // 20 MB/s: 2 ms of the rate, 40 kB.
  TokenBucket slower(20'000'000, kStart);
  (void)slower.take(1U << 30U, kStart);
  EXPECT_EQ(slower.take(1U << 30U, kStart).wait, 2ms);
}

TEST(TokenBucket, ChangingTheRateRefills) {
  TokenBucket bucket(1'000'000, kStart);
  (void)bucket.take(50'000, kStart);
  bucket.set_rate(0, kStart);
  EXPECT_TRUE(bucket.unlimited());
  bucket.set_rate(4'000'000, kStart);
  EXPECT_EQ(bucket.take(1'000'000, kStart).bytes, 200'000U);
}

}  // namespace
}  // namespace modeldrop::upload
