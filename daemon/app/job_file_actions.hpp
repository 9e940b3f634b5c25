#pragma once

// What happens to a job's file once the job is over (docs/configuration.md on_success / on_failure):
// moved to done/failed, kept or deleted, with `current_path` kept true in the database.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"

#include <boost/asio/thread_pool.hpp>

#include <filesystem>
#include <functional>

namespace modeldrop::app {

// The watch entry a job came from; nullptr for `modeldrop add` jobs (their files stay put)
// and for watches removed by a reload.
const config::WatchConfig* watch_of(const store::Job& job, const config::Config& config);

// Whether the after-action of a succeeded or failed job moves or deletes its file.
bool after_action_moves_file(const store::Job& job, const config::Config& config);

// Applies after-actions on a thread of its own: a move across filesystems copies and fsyncs the
// whole archive (seconds per GiB), which must never stall the event loop, its uploads or the
// systemd watchdog. Moves run one at a time, in the order asked.
class JobFileWork {
 public:
  JobFileWork(StoreClient& store, const Clock& clock) : store_(store), clock_(clock) {}
  ~JobFileWork() { stop(); }
  JobFileWork(const JobFileWork&) = delete;
  JobFileWork& operator=(const JobFileWork&) = delete;

  // Applies the after-action for a succeeded or failed job; anything else is left alone. The
  // new current_path goes to the store from the worker thread.
  void dispose(const store::Job& job, const config::Config& config);
  // Waits for the actions already asked (the store must still take their paths).
  void stop();
  // Told on the loop, before a move or delete starts, which file is about to leave its place.
  void set_leaving(std::function<void(const std::filesystem::path&)> leaving) { leaving_ = std::move(leaving); }

 private:
  std::function<void(const std::filesystem::path&)> leaving_;
  StoreClient& store_;
  const Clock& clock_;
  boost::asio::thread_pool worker_{1};
  bool stopped_ = false;
};

// The ready marker of a job cancelled because its archive disappeared: removed, as it has
// nothing left to announce. Runs on the store thread (it records the change).
void remove_ready_marker(const store::Job& job, store::JobStore& store, WallTime now);

}  // namespace modeldrop::app
