#pragma once

// The daemon's upload path without the daemon process: the real UploadScheduler over a real
// JobStore (SQLite file, StoreWorker thread) and a real UploadPool speaking TLS to the
// in-process FakeApi on 127.0.0.1, with time injected through a ManualClock. Tests queue jobs
// from a second connection (as `modeldrop add` would), move the clock, wake the scheduler
// and read back the rows docs/database.md makes public.

#include "app/job_events.hpp"
#include "app/job_file_actions.hpp"
#include "app/preflight_stage.hpp"
#include "app/store_client.hpp"
#include "app/upload_scheduler.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"
#include "store/store_worker.hpp"
#include "support/fake_api/fake_api.hpp"
#include "support/temp_dir.hpp"
#include "upload/upload_pool.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::test {

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void TearDown() override;

  // The config the scheduler and pool run with; tests adjust it before start().
  config::Config config_;
  // Starts the fake API (unless started already), the store, the pool, the hash stage and
  // the scheduler.
  void start();
  void start_fake(bool untrusted_certificate = false);
  // Stops the scheduler (aborting uploads in flight) and tears everything down.
  void stop();

  // Writes `bytes` pseudo-random bytes (seeded by `seed`) and queues the file as `modeldrop
  // add` does, from a second connection; then wakes the daemon's side.
  store::JobId add_job(const std::string& name, std::size_t bytes, std::optional<std::string> project = std::nullopt,
                       unsigned seed = 0);
  std::filesystem::path write_archive(const std::string& name, std::size_t bytes, unsigned seed);
  // Queues an existing file (with a token_file: as a watch with one, or `add --token-file`).
  store::JobId enqueue(const std::filesystem::path& file, std::optional<std::string> project,
                       std::optional<std::string> token_file = std::nullopt);

  // Runs the event loop until `done` or `bound` (real time) passes.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds bound = std::chrono::seconds(30));
  // Runs the event loop for `span` of real time.
  void run_for(std::chrono::milliseconds span);
  // Runs handlers for at most `span`.
  void pump(std::chrono::milliseconds span);
  // Until the job is in one of `states` and no attempt of it is open.
  bool wait_for_state(store::JobId id, store::JobState state,
                      std::chrono::milliseconds bound = std::chrono::seconds(30));
  // Until the job has `count` finished attempts.
  bool wait_for_attempts(store::JobId id, std::size_t count,
                         std::chrono::milliseconds bound = std::chrono::seconds(30));

  // Moves the injected clock and lets the scheduler look again (as its timer would).
  void advance(std::chrono::milliseconds by);

  // `modeldrop` changed the database (what the daemon does when its poll sees that).
  void external_change();

  // What another connection (sqlite3, `modeldrop`) sees.
  store::JobStore& outside();
  store::JobWithAttempts job(store::JobId id);
  std::optional<std::string> held_reason();
  std::size_t upload_requests() const;  // POST /v0/models/upload requests the fake saw

  static TestPki& pki() { return *pki_; }

  TempDir dir_;
  ManualClock clock_{WallClock::from_time_t(1'800'000'000)};
  boost::asio::io_context io_;
  std::unique_ptr<FakeApi> api_;
  std::unique_ptr<store::StoreWorker> worker_;
  std::unique_ptr<app::StoreClient> store_client_;
  std::unique_ptr<upload::UploadPool> pool_;
  app::JobEvents events_;  // before the components that publish to it
  std::unique_ptr<app::JobFileWork> files_;
  std::unique_ptr<app::PreflightStage> hashes_;
  std::unique_ptr<app::UploadScheduler> scheduler_;
  std::optional<store::JobStore> outside_;
  std::uint64_t seed_ = 42;
  bool without_fake_ = false;  // start() keeps config_.api.base_url (e.g. a closed port)

 private:
  static TempDir* pki_dir_;
  static TestPki* pki_;
};

// Collects every message logged through spdlog's default logger while it lives (the daemon
// logs only through it), then puts the previous logger back.
class LogCapture {
 public:
  explicit LogCapture(spdlog::level::level_enum level = spdlog::level::debug);
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  [[nodiscard]] std::vector<std::string> lines() const;
  [[nodiscard]] std::size_t count_containing(std::string_view text) const;

 private:
  struct Sink;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// A fault with only the fields a test names.
test::Fault fault(test::FaultKind kind, const std::function<void(test::Fault&)>& adjust = nullptr);
test::Fault status_fault(int status, std::string body = {},
                         std::vector<std::pair<std::string, std::string>> headers = {});

}  // namespace modeldrop::test
