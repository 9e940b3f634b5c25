#include "common/pooled_thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace modeldrop {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) until `done` holds.
template <class Predicate>
bool eventually(Predicate done) {
  for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(1ms);
  return done();
}

TEST(PooledThreadTest, JoinWaitsForTheTaskAndWhatItCaptured) {
  std::atomic<bool> ran{false};
  auto witness = std::make_shared<int>(1);
  std::weak_ptr<int> captured = witness;
  PooledThread thread([&ran, witness = std::move(witness)] {
    std::this_thread::sleep_for(20ms);
    ran = true;
  });
  EXPECT_TRUE(thread.joinable());
  thread.join();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(captured.expired()) << "the task's captures outlived join()";
  EXPECT_FALSE(thread.joinable());
}

TEST(PooledThreadTest, TheNextTaskRunsOnTheThreadTheLastOneLeftIdle) {
  std::thread::id first;
  PooledThread([&first] { first = std::this_thread::get_id(); }).join();
  ASSERT_TRUE(eventually([] { return PooledThread::idle_threads() >= 1; }));
  // Only idle threads can take it (none is being started meanwhile in this test binary).
  std::thread::id second;
  PooledThread([&second] { second = std::this_thread::get_id(); }).join();
  EXPECT_NE(second, std::this_thread::get_id());
  ASSERT_TRUE(eventually([] { return PooledThread::idle_threads() >= 1; }));
  std::set<std::thread::id> seen;
  for (int i = 0; i < 20; ++i) {
    std::thread::id id;
    PooledThread([&id] { id = std::this_thread::get_id(); }).join();
    seen.insert(id);
    eventually([] { return PooledThread::idle_threads() >= 1; });
  }
  // Started one after another, twenty tasks share the few threads already cached.
  EXPECT_LE(seen.size(), 3U);
}

TEST(PooledThreadTest, TasksNeverQueueBehindOneAnother) {
  // Every task blocks until all of them have started: with a thread each, they all do.
  constexpr int kTasks = 12;
  std::mutex mutex;
  std::condition_variable all_started;
  int started = 0;
  std::atomic<int> finished{0};
  std::vector<PooledThread> threads;
  for (int i = 0; i < kTasks; ++i) {
    threads.emplace_back([&] {
      std::unique_lock lock(mutex);
      ++started;
      all_started.notify_all();
      if (all_started.wait_for(lock, 10s, [&] { return started == kTasks; })) ++finished;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(finished.load(), kTasks);
}

TEST(PooledThreadTest, DestroyingOrReplacingAHandleJoinsIt) {
  std::atomic<int> done{0};
  {
    PooledThread thread([&done] {
      std::this_thread::sleep_for(20ms);
      ++done;
    });
  }
  EXPECT_EQ(done.load(), 1);
  std::atomic<int> replaced{0};
  PooledThread thread([&replaced] {
    std::this_thread::sleep_for(20ms);
    ++replaced;
  });
  thread = PooledThread([&done] { ++done; });
  EXPECT_EQ(replaced.load(), 1) << "move-assignment joined the task it replaced";
  thread.join();
  EXPECT_EQ(done.load(), 2);
}

}  // namespace
}  // namespace modeldrop
