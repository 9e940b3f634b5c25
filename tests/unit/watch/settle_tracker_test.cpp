#include "watch/settle_tracker.hpp"

#include <gtest/gtest.h>

namespace modeldrop::watch {
namespace {

using namespace std::chrono_literals;
using Activity = SettleTracker::Activity;
using Verdict = SettleTracker::Verdict;

const SettleTracker::TimePoint kStart{100s};

FileState state(std::uint64_t size, std::int64_t mtime = 1, std::int64_t ctime = 1) {
  return FileState{1, 42, size, mtime, ctime};
}

TEST(SettleTracker, ReadyOnceUnchangedForTheSettleTime) {
  SettleTracker tracker;
  EXPECT_EQ(tracker.observe("/d/a.zip", state(10), Activity::closed, 2s, kStart), Verdict::settling);
  EXPECT_EQ(tracker.next_deadline(), kStart + 2s);
  EXPECT_TRUE(tracker.take_due(kStart + 1999ms).empty());
  const auto due = tracker.take_due(kStart + 2s);
  ASSERT_EQ(due, std::vector<std::string>{"/d/a.zip"});
  EXPECT_EQ(tracker.recheck("/d/a.zip", state(10), kStart + 2s), Verdict::ready);
  EXPECT_FALSE(tracker.contains("/d/a.zip"));
  EXPECT_FALSE(tracker.next_deadline());
}

TEST(SettleTracker, EveryEventRestartsTheSettlePeriod) {
  SettleTracker tracker;
  tracker.observe("/d/a.zip", state(10), Activity::written, 2s, kStart);
  tracker.observe("/d/a.zip", state(20, 2, 2), Activity::written, 2s, kStart + 1500ms);
  EXPECT_EQ(tracker.next_deadline(), kStart + 3500ms);
  EXPECT_TRUE(tracker.take_due(kStart + 3s).empty());
  tracker.observe("/d/a.zip", state(20, 2, 2), Activity::closed, 2s, kStart + 3s);  // same state, still restarts
  EXPECT_EQ(tracker.next_deadline(), kStart + 5s);
}

TEST(SettleTracker, AChangeSeenAtTheDeadlineStartsAnotherPeriod) {
  SettleTracker tracker;
  tracker.observe("/d/a.zip", state(10), Activity::closed, 2s, kStart);
  ASSERT_EQ(tracker.take_due(kStart + 2s).size(), 1u);
  // Written without an event reaching us (e.g. lost to an overflow): mtime moved.
  EXPECT_EQ(tracker.recheck("/d/a.zip", state(10, 5, 5), kStart + 2s), Verdict::settling);
  EXPECT_EQ(tracker.next_deadline(), kStart + 4s);
  ASSERT_EQ(tracker.take_due(kStart + 4s).size(), 1u);
  EXPECT_EQ(tracker.recheck("/d/a.zip", state(10, 5, 5), kStart + 4s), Verdict::ready);
}

TEST(SettleTracker, CtimeAloneCountsAsAChange) {
  SettleTracker tracker;
  tracker.observe("/d/a.zip", state(10, 1, 1), Activity::closed, 1s, kStart);
  ASSERT_EQ(tracker.take_due(kStart + 1s).size(), 1u);
  EXPECT_EQ(tracker.recheck("/d/a.zip", state(10, 1, 2), kStart + 1s), Verdict::settling);
}

TEST(SettleTracker, ScansDoNotPostponeAQuietFile) {
  SettleTracker tracker;
  tracker.observe("/d/a.zip", state(10), Activity::seen, 10s, kStart);
  // A polling scan every 5 s sees the same state: the deadline stays.
  EXPECT_EQ(tracker.observe("/d/a.zip", state(10), Activity::seen, 10s, kStart + 5s), Verdict::settling);
  EXPECT_EQ(tracker.next_deadline(), kStart + 10s);
  // A scan that sees a change restarts it.
  tracker.observe("/d/a.zip", state(11, 2, 2), Activity::seen, 10s, kStart + 6s);
  EXPECT_EQ(tracker.next_deadline(), kStart + 16s);
}

TEST(SettleTracker, SettleZeroIsReadyAtCloseNotAtABareModify) {
  SettleTracker tracker;
  EXPECT_EQ(tracker.observe("/d/a.zip", state(10), Activity::written, 0s, kStart), Verdict::waiting_for_close);
  EXPECT_FALSE(tracker.next_deadline());  // no timer for a file still being written
  EXPECT_EQ(tracker.observe("/d/a.zip", state(20), Activity::written, 0s, kStart), Verdict::waiting_for_close);
  EXPECT_EQ(tracker.observe("/d/a.zip", state(20), Activity::closed, 0s, kStart), Verdict::ready);
  EXPECT_FALSE(tracker.contains("/d/a.zip"));
  EXPECT_EQ(tracker.observe("/d/b.zip", state(5), Activity::seen, 0s, kStart), Verdict::ready);
}

TEST(SettleTracker, ARenameIntoPlaceIsReadyAtOnce) {
  SettleTracker tracker;
  EXPECT_EQ(tracker.observe("/d/a.zip", state(10), Activity::renamed, 10s, kStart), Verdict::ready);
  EXPECT_FALSE(tracker.contains("/d/a.zip"));
  // Even a file that was settling under that name: the rename replaced it with a finished one.
  tracker.observe("/d/b.zip", state(5), Activity::written, 10s, kStart);
  EXPECT_EQ(tracker.observe("/d/b.zip", state(6, 2, 2), Activity::renamed, 10s, kStart + 1s), Verdict::ready);
  EXPECT_FALSE(tracker.next_deadline());
}

TEST(SettleTracker, ManyFilesShareOneOrderedSchedule) {
  SettleTracker tracker;
  for (int i = 0; i < 10000; ++i) {
    tracker.observe("/d/f" + std::to_string(i), state(static_cast<std::uint64_t>(i)), Activity::closed, 1s,
                    kStart + std::chrono::milliseconds(i % 100));
  }
  EXPECT_EQ(tracker.size(), 10000u);
  EXPECT_EQ(tracker.next_deadline(), kStart + 1s);
  EXPECT_EQ(tracker.take_due(kStart + 1s + 49ms).size(), 5000u);
  EXPECT_EQ(tracker.next_deadline(), kStart + 1s + 50ms);
  EXPECT_EQ(tracker.take_due(kStart + 2s).size(), 5000u);
  EXPECT_FALSE(tracker.next_deadline());
}

TEST(SettleTracker, ForgetAndUnknownRechecks) {
  SettleTracker tracker;
  tracker.observe("/d/a.zip", state(10), Activity::closed, 1s, kStart);
  tracker.forget("/d/a.zip");
  EXPECT_FALSE(tracker.next_deadline());
  EXPECT_EQ(tracker.recheck("/d/a.zip", state(10), kStart + 1s), Verdict::not_tracked);
  tracker.forget("/d/never-seen.zip");
  EXPECT_EQ(tracker.size(), 0u);
}

}  // namespace
}  // namespace modeldrop::watch
