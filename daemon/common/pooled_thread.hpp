#pragma once

// A task on a thread of its own, as std::thread gives, but the thread comes from a cache of
// idle ones and goes back to it when the task returns. Starting one is a hand-off under a
// mutex instead of a clone, a fresh stack and (for a new thread that allocates) a new malloc
// arena: the daemon starts a file reader per upload and per hash, thousands a second when
// many small archives arrive at once. Threads idle for kIdleTimeout end; at most kMaxIdle wait.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace modeldrop {

class PooledThread {
 public:
  static constexpr std::chrono::seconds kIdleTimeout{30};
  static constexpr std::size_t kMaxIdle = 32;

  PooledThread() = default;
  // Starts `task` at once, on an idle thread or, when none waits, on a new one.
  explicit PooledThread(std::function<void()> task);
  PooledThread(PooledThread&&) noexcept = default;
  PooledThread& operator=(PooledThread&& other) noexcept;
  PooledThread(const PooledThread&) = delete;
  PooledThread& operator=(const PooledThread&) = delete;
  // Joins: unlike std::thread, a forgotten join waits instead of ending the process.
  ~PooledThread() { join(); }

  [[nodiscard]] bool joinable() const { return done_ != nullptr; }
  // Waits until the task has returned and everything it captured is destroyed.
  void join();

  // Threads waiting in the cache now (for tests).
  static std::size_t idle_threads();

 private:
  struct Done;
  std::shared_ptr<Done> done_;
};

}  // namespace modeldrop
