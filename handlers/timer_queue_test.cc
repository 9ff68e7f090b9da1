#include "handlers/timer_queue.h"

#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "models/sync.h"

namespace sluice {
namespace {

TEST(TimerQueueTest, RunsInTimeOrder) {
  TimerQueue timers;
  Mutex mu;
  std::vector<int> order;
  Notification done;
  const absl::Time now = absl::Now();
  timers.RunAt(now + absl::Milliseconds(30), [&] {
    MutexLock lock(&mu);
    order.push_back(3);
    done.Notify();
  });
  timers.RunAt(now + absl::Milliseconds(10), [&] {
    MutexLock lock(&mu);
    order.push_back(2);
  });
  timers.RunAt(now - absl::Seconds(1), [&] {
    MutexLock lock(&mu);
    order.push_back(1);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(TimerQueueTest, DoesNotRunBeforeDue) {
  TimerQueue timers;
  Notification ran;
  const absl::Time due = absl::Now() + absl::Milliseconds(50);
  absl::Time ran_at;
  timers.RunAt(due, [&] {
    ran_at = absl::Now();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(ran_at, due);
}

TEST(TimerQueueTest, DestructionDropsPendingTimers) {
  bool ran = false;
  {
    TimerQueue timers;
    timers.RunAt(absl::Now() + absl::Hours(1), [&] { ran = true; });
    EXPECT_EQ(timers.size(), 1u);
  }
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace sluice
