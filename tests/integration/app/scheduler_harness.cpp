#include "integration/app/scheduler_harness.hpp"

#include "support/pseudo_random_file.hpp"

#include <spdlog/sinks/base_sink.h>

#include <sys/stat.h>
#include <unistd.h>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace modeldrop::test {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

TempDir* SchedulerTest::pki_dir_ = nullptr;
TestPki* SchedulerTest::pki_ = nullptr;

void SchedulerTest::SetUpTestSuite() {
  // Generating the PKI takes a few OpenSSL runs: once per test program.
  pki_dir_ = new TempDir();
  pki_ = new TestPki(TestPki::generate(pki_dir_->path()));
}

void SchedulerTest::TearDownTestSuite() {
  delete pki_;
  delete pki_dir_;
  pki_ = nullptr;
  pki_dir_ = nullptr;
}

void SchedulerTest::TearDown() {
  stop();
}

void SchedulerTest::start_fake(bool untrusted_certificate) {
  FakeApiOptions options;
  options.token = "test-token";
  options.cert_file = untrusted_certificate ? pki_->untrusted_server_cert : pki_->server_cert;
  options.key_file = untrusted_certificate ? pki_->untrusted_server_key : pki_->server_key;
  api_ = std::make_unique<FakeApi>(options);
}

void SchedulerTest::start() {
  if (!api_ && !without_fake_) start_fake();
  if (api_) config_.api.base_url = api_->base_url();
  config_.api.ca_file = pki_->ca_cert;
  config_.database = dir_ / "state" / "jobs.db";

  std::vector<std::string> warnings;
  auto opened = store::JobStore::open_for_daemon(config_.database, {}, &warnings);
  ASSERT_TRUE(opened) << opened.error().message;
  ASSERT_TRUE(opened->register_daemon(::getpid(), "test", clock_.now()));
  worker_ = std::make_unique<store::StoreWorker>(std::move(*opened));
  store_client_ = std::make_unique<app::StoreClient>(io_, *worker_);

  upload::PoolSettings settings;
  settings.api = config_.api;
  settings.sessions = config_.upload.sessions;
  settings.max_bytes_per_second = config_.upload.max_bytes_per_second;
  settings.token = "test-token";
  settings.proxy_environment = {};  // hermetic, whatever the machine's HTTPS_PROXY says
  auto pool = upload::UploadPool::create(io_, settings);
  ASSERT_TRUE(pool) << pool.error().message;
  pool_ = std::move(*pool);

  scheduler_ = std::make_unique<app::UploadScheduler>(io_, *store_client_, *pool_, clock_, events_,
                                                      app::UploadScheduler::Settings{config_}, seed_);
  files_ = std::make_unique<app::JobFileWork>(*store_client_, clock_);
  auto dispose = [this](const store::Job& job) { files_->dispose(job, config_); };
  scheduler_->set_dispose(dispose);
  hashes_ = std::make_unique<app::PreflightStage>(io_, *store_client_, clock_, config_, app::content_check_for,
                                                  app::publish_then_dispose(events_, dispose),
                                                  [this] { scheduler_->wake(); });
  app::wire_preflight(*scheduler_, *hashes_);
  scheduler_->start();
}

void SchedulerTest::stop() {
  if (scheduler_) {
    bool stopped = false;
    scheduler_->stop([&] { stopped = true; });
    EXPECT_TRUE(run_until([&] { return stopped; }, 20s)) << "the scheduler did not stop";
  }
  if (hashes_) hashes_->stop();
  if (files_) files_->stop();
  if (worker_) {
    // Let completions of the last batches reach the loop before it goes away.
    worker_->stop();
    io_.restart();
    io_.poll();
  }
  scheduler_.reset();
  hashes_.reset();
  files_.reset();
  pool_.reset();
  io_.restart();
  io_.poll();
  store_client_.reset();
  worker_.reset();
  outside_.reset();
}

std::filesystem::path SchedulerTest::write_archive(const std::string& name, std::size_t bytes, unsigned seed) {
  const auto path = dir_ / name;
  write_pseudo_random_file(path, bytes, seed != 0 ? seed : std::hash<std::string>{}(name));
  return path;
}

store::JobId SchedulerTest::enqueue(const std::filesystem::path& file, std::optional<std::string> project,
                                    std::optional<std::string> token_file) {
  struct stat st {};
  EXPECT_EQ(::stat(file.c_str(), &st), 0);
  store::NewJob job;
  job.path = file;
  job.project_id = std::move(project);
  job.token_file = std::move(token_file);
  // write_archive() writes pseudo-random bytes: the archive checks have tests of their own.
  job.validate = preflight::ArchiveValidation::none;
  job.file = store::FileIdentity{st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
                                 std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
  auto queued = outside().enqueue(job, clock_.now());
  EXPECT_TRUE(queued) << queued.error().message;
  if (hashes_) hashes_->sweep();
  if (scheduler_) scheduler_->wake();
  return queued ? queued->job : 0;
}

store::JobId SchedulerTest::add_job(const std::string& name, std::size_t bytes, std::optional<std::string> project,
                                    unsigned seed) {
  return enqueue(write_archive(name, bytes, seed), std::move(project));
}

bool SchedulerTest::run_until(const std::function<bool()>& done, std::chrono::milliseconds bound) {
  const auto until = SteadyClock::now() + bound;
  // The condition may read the database: look every few milliseconds, not after every handler.
  for (int turns = 0; !done() && SteadyClock::now() < until && turns < 1'000'000; ++turns) pump(5ms);
  return done();
}

void SchedulerTest::run_for(std::chrono::milliseconds span) {
  const auto until = SteadyClock::now() + span;
  for (int turns = 0; SteadyClock::now() < until && turns < 1'000'000; ++turns) pump(5ms);
}

void SchedulerTest::pump(std::chrono::milliseconds span) {
  io_.restart();
  // With nothing to wait for, run_for returns at once; do not spin.
  if (io_.run_for(span) == 0) std::this_thread::sleep_for(1ms);
}

bool SchedulerTest::wait_for_state(store::JobId id, store::JobState state, std::chrono::milliseconds bound) {
  return run_until(
      [&] {
        auto j = outside().job_with_attempts(id);
        if (!j || !*j || (*j)->job.state != state) return false;
        for (const auto& a : (*j)->attempts) {
          if (!a.outcome) return false;
        }
        return true;
      },
      bound);
}

bool SchedulerTest::wait_for_attempts(store::JobId id, std::size_t count, std::chrono::milliseconds bound) {
  return run_until(
      [&] {
        auto j = outside().job_with_attempts(id);
        if (!j || !*j) return false;
        std::size_t finished = 0;
        for (const auto& a : (*j)->attempts) finished += a.outcome ? 1U : 0U;
        return finished >= count && (*j)->job.state != store::JobState::uploading;
      },
      bound);
}

void SchedulerTest::advance(std::chrono::milliseconds by) {
  clock_.advance(by);
  scheduler_->wake();
}

void SchedulerTest::external_change() {
  scheduler_->external_change();
  hashes_->sweep();
}

store::JobStore& SchedulerTest::outside() {
  if (!outside_) {
    auto opened = store::JobStore::open_existing(dir_ / "state" / "jobs.db");
    EXPECT_TRUE(opened) << opened.error().message;
    if (!opened) throw std::runtime_error("cannot open the database from outside");
    outside_.emplace(std::move(*opened));
  }
  return *outside_;
}

store::JobWithAttempts SchedulerTest::job(store::JobId id) {
  auto j = outside().job_with_attempts(id);
  EXPECT_TRUE(j && *j) << "job " << id;
  if (!j || !*j) return {};
  return std::move(**j);
}

std::optional<std::string> SchedulerTest::held_reason() {
  auto record = outside().daemon_record();
  EXPECT_TRUE(record && *record);
  if (!record || !*record) return std::nullopt;
  return (*record)->held_reason;
}

std::size_t SchedulerTest::upload_requests() const {
  std::size_t n = 0;
  for (const auto& r : api_->requests()) n += r.target.starts_with("/v0/models/upload") ? 1U : 0U;
  return n;
}

struct LogCapture::Sink final : spdlog::sinks::base_sink<std::mutex> {
  std::vector<std::string> copy() {
    std::lock_guard lock(mutex_);
    return lines;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines.emplace_back(
        std::string(spdlog::level::to_string_view(msg.level).data(), spdlog::level::to_string_view(msg.level).size()) +
        ": " + std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines;
};

LogCapture::LogCapture(spdlog::level::level_enum level)
    : sink_(std::make_shared<Sink>()), previous_(spdlog::default_logger()) {
  auto logger = std::make_shared<spdlog::logger>("capture", sink_);
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

LogCapture::~LogCapture() {
  spdlog::set_default_logger(previous_);
}

std::vector<std::string> LogCapture::lines() const {
  return sink_->copy();
}

std::size_t LogCapture::count_containing(std::string_view text) const {
  std::size_t n = 0;
  for (const auto& line : lines()) n += line.find(text) != std::string::npos ? 1U : 0U;
  return n;
}

Fault fault(FaultKind kind, const std::function<void(Fault&)>& adjust) {
  Fault f;
  f.kind = kind;
  if (adjust) adjust(f);
  return f;
}

Fault status_fault(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers) {
  Fault f;
  f.kind = FaultKind::status;
  f.status = status;
  f.body = std::move(body);
  f.headers = std::move(headers);
  return f;
}

}  // namespace modeldrop::test
