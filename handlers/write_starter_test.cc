#include "handlers/write_starter.h"

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "models/sync.h"

namespace sluice {
namespace {

TEST(WriteStarterTest, RunsTasksInOrderOnItsOwnThread) {
  Mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  absl::Notification done;
  {
    WriteStarter starter("test");
    for (int i = 0; i < 100; ++i) {
      starter.Post([&, i] {
        MutexLock lock(&mu);
        order.push_back(i);
        threads.push_back(std::this_thread::get_id());
      });
    }
    starter.Post([&] { done.Notify(); });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  }
  MutexLock lock(&mu);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  for (std::thread::id id : threads) {
    EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_EQ(id, threads.front());  // one thread
  }
}

TEST(WriteStarterTest, DestructorRunsEverythingPostedBeforeIt) {
  int ran = 0;  // read after the destructor has joined the starter's thread
  absl::Notification release;
  {
    WriteStarter starter("test");
    // The first task holds the thread until just before the destructor
    // begins, so the rest are (almost always) still queued when it does.
    starter.Post([&] { release.WaitForNotification(); });
    for (int i = 0; i < 50; ++i) starter.Post([&] { ++ran; });
    release.Notify();
  }
  EXPECT_EQ(ran, 50);
}

TEST(WriteStarterTest, ATaskMayPostAnother) {
  absl::Notification second_ran;
  WriteStarter starter("test");
  starter.Post([&] { starter.Post([&] { second_ran.Notify(); }); });
  EXPECT_TRUE(second_ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
}

}  // namespace
}  // namespace sluice
