#include "models/cancellation.h"

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(CancellationTest, DefaultTokenIsNeverCancelled) {
  CancellationToken token;
  EXPECT_FALSE(token.IsCancelled());
  EXPECT_EQ(token.deadline(), absl::InfiniteFuture());
}

TEST(CancellationTest, CancelReachesEveryCopyAndIsIdempotent) {
  CancellationSource source;
  CancellationToken a = source.token();
  CancellationToken b = a;
  EXPECT_FALSE(a.IsCancelled());
  source.Cancel();
  source.Cancel();
  EXPECT_TRUE(a.IsCancelled());
  EXPECT_TRUE(b.IsCancelled());
  EXPECT_TRUE(source.cancelled());
}

TEST(CancellationTest, PastDeadlineCountsAsCancelled) {
  CancellationSource source(absl::Now() - absl::Milliseconds(1));
  EXPECT_TRUE(source.token().IsCancelled());
  EXPECT_FALSE(source.cancelled());  // nobody called Cancel
}

TEST(CancellationTest, WaitForCancellationWakesOnCancel) {
  CancellationSource source;
  CancellationToken token = source.token();
  std::thread canceller([&] { source.Cancel(); });
  // Would block for an hour if Cancel did not wake it.
  EXPECT_TRUE(token.WaitForCancellation(absl::Hours(1)));
  canceller.join();
}

TEST(CancellationTest, WaitForCancellationReturnsAtDeadline) {
  CancellationSource source(absl::Now() + absl::Milliseconds(20));
  EXPECT_TRUE(source.token().WaitForCancellation(absl::Hours(1)));
}

TEST(CancellationTest, WaitForCancellationTimesOutUncancelled) {
  CancellationSource source;
  EXPECT_FALSE(source.token().WaitForCancellation(absl::Milliseconds(1)));
}

}  // namespace
}  // namespace sluice
