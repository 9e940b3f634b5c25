#include "common/pooled_thread.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace modeldrop {

struct PooledThread::Done {
  std::mutex mutex;
  std::condition_variable signal;
  bool done = false;
};

namespace {

class ThreadCache {
 public:
  // Never destroyed: idle threads still wait on it while the process exits.
  static ThreadCache& instance() {
    static auto* const cache = new ThreadCache;
    return *cache;
  }

  void run(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      // Every waiting thread takes one queued task; one more task needs one more waiter.
      if (waiting_ > tasks_.size()) {
        tasks_.push_back(std::move(task));
        wake_.notify_one();
        return;
      }
    }
    std::thread([this, task = std::move(task)]() mutable { work(std::move(task)); }).detach();
  }

  std::size_t waiting() {
    std::lock_guard lock(mutex_);
    return waiting_;
  }

 private:
  void work(std::function<void()> task) {
    for (;;) {
      task();
      task = nullptr;
      std::unique_lock lock(mutex_);
      if (waiting_ >= PooledThread::kMaxIdle) return;
      ++waiting_;
      const bool got = wake_.wait_for(lock, PooledThread::kIdleTimeout, [this] { return !tasks_.empty(); });
      --waiting_;
      if (!got) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // handed over, not yet taken by a waiting thread
  std::size_t waiting_ = 0;
};

}  // namespace

PooledThread::PooledThread(std::function<void()> task) : done_(std::make_shared<Done>()) {
  ThreadCache::instance().run([done = done_, task = std::move(task)]() mutable {
    {
      auto run = std::move(task);
      run();
    }
    std::lock_guard lock(done->mutex);
    done->done = true;
    done->signal.notify_all();
  });
}

PooledThread& PooledThread::operator=(PooledThread&& other) noexcept {
  if (this != &other) {
    join();
    done_ = std::move(other.done_);
  }
  return *this;
}

void PooledThread::join() {
  if (!done_) return;
  {
    std::unique_lock lock(done_->mutex);
    done_->signal.wait(lock, [this] { return done_->done; });
  }
  done_.reset();
}

std::size_t PooledThread::idle_threads() {
  return ThreadCache::instance().waiting();
}

}  // namespace modeldrop
