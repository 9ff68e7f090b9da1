#include "handlers/output_budget.h"

#include <memory>

#include "gtest/gtest.h"

namespace sluice {
namespace {

class CountingWaiter final : public BudgetWaiter {
 public:
  void OnBudgetAvailable() override { ++woken; }
  int woken = 0;
};

TEST(OutputBudgetTest, SpentAtTheLimit) {
  OutputBudget budget(100);
  EXPECT_TRUE(budget.Add(99));
  EXPECT_FALSE(budget.Add(1));
  EXPECT_EQ(budget.used(), 100u);
}

TEST(OutputBudgetTest, WaitersWakeOnceBelowSevenEighths) {
  OutputBudget budget(800);
  EXPECT_FALSE(budget.Add(800));
  auto a = std::make_shared<CountingWaiter>();
  auto b = std::make_shared<CountingWaiter>();
  ASSERT_TRUE(budget.Wait(a));
  ASSERT_TRUE(budget.Wait(b));
  EXPECT_EQ(budget.waiting(), 2);
  budget.Remove(50);  // 750: not below 700 yet
  EXPECT_EQ(a->woken, 0);
  budget.Remove(100);  // 650
  EXPECT_EQ(a->woken, 1);
  EXPECT_EQ(b->woken, 1);
  EXPECT_EQ(budget.waiting(), 0);
  budget.Remove(650);
  EXPECT_EQ(a->woken, 1);  // woken once
}

TEST(OutputBudgetTest, WaitWithRoomRegistersNothing) {
  OutputBudget budget(800);
  budget.Add(100);
  auto a = std::make_shared<CountingWaiter>();
  EXPECT_FALSE(budget.Wait(a));
  EXPECT_EQ(budget.waiting(), 0);
}

TEST(OutputBudgetTest, AWaiterThatIsGoneIsSkipped) {
  OutputBudget budget(100);
  budget.Add(100);
  {
    auto gone = std::make_shared<CountingWaiter>();
    ASSERT_TRUE(budget.Wait(gone));
  }
  budget.Remove(100);  // nothing to call back, nothing to crash
  EXPECT_EQ(budget.waiting(), 0);
}

}  // namespace
}  // namespace sluice
