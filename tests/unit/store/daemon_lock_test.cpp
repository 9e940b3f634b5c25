#include "store/daemon_lock.hpp"

#include "store_fixture.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace modeldrop::store {
namespace {

using test_support::must;

TEST(DaemonLockTest, OnlyOneHolderAtATimeAndReleasedWithIt) {
  test::TempDir dir;
  const auto database = dir.path() / "jobs.db";
  EXPECT_EQ(DaemonLock::holder(database), DaemonLock::Holder::nobody);  // no lock file yet
  {
    auto first = must(DaemonLock::try_acquire(database));
    ASSERT_TRUE(first);
    EXPECT_TRUE(std::filesystem::exists(DaemonLock::file_for(database)));
    // flock belongs to an open file description: a second open, even in this process, is refused.
    EXPECT_FALSE(must(DaemonLock::try_acquire(database)));
    EXPECT_EQ(DaemonLock::holder(database), DaemonLock::Holder::daemon);
    // Moving the lock keeps it held.
    DaemonLock moved = std::move(*first);
    EXPECT_EQ(DaemonLock::holder(database), DaemonLock::Holder::daemon);
  }
  EXPECT_EQ(DaemonLock::holder(database), DaemonLock::Holder::nobody);
  EXPECT_TRUE(must(DaemonLock::try_acquire(database)));
}

TEST(DaemonLockTest, ALockFileThatCannotBeCreatedIsAnErrorNamingIt) {
  test::TempDir dir;
  const auto database = dir.path() / "missing-dir" / "jobs.db";
  auto lock = DaemonLock::try_acquire(database);
  ASSERT_FALSE(lock);
  EXPECT_NE(lock.error().message.find("jobs.db.lock"), std::string::npos) << lock.error().message;
}

}  // namespace
}  // namespace modeldrop::store
