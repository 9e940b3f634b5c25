// The composition root: builds every component in dependency order, owns the signals, the
// periodic duties (heartbeat, STATUS=, watchdog, change polling) and the shutdown.
#include "app/daemon.hpp"

#include "app/api_tokens.hpp"
#include "app/hook_dispatch.hpp"
#include "app/job_events.hpp"
#include "app/job_file_actions.hpp"
#include "app/model_registrar.hpp"
#include "app/preflight_stage.hpp"
#include "app/status_line.hpp"
#include "app/store_client.hpp"
#include "app/systemd_notifier.hpp"
#include "app/upload_scheduler.hpp"
#include "app/watch_intake.hpp"
#include "common/exit_codes.hpp"
#include "common/logging.hpp"
#include "common/version.hpp"
#include "config/config_loader.hpp"
#include "metrics/daemon_metrics.hpp"
#include "metrics/metrics_server.hpp"
#include "metrics/scrape_collector.hpp"
#include "store/daemon_lock.hpp"
#include "store/job_store.hpp"
#include "store/store_worker.hpp"
#include "upload/upload_pool.hpp"
#include "watch/drop_watcher.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdlib>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

constexpr auto kHeartbeatInterval = 2s;      // docs/database.md: at least every 5 s
constexpr auto kChangePollInterval = 250ms;  // CLI changes take effect within 1 s (docs/cli.md)
constexpr auto kTokenCheckInterval = 5s;
constexpr auto kShutdownDeadline = 8s;  // docs/files.md: exit within 10 s

upload::PoolSettings pool_settings(const config::Config& config, const std::string& token) {
  upload::PoolSettings settings;
  settings.api = config.api;
  settings.sessions = config.upload.sessions;
  settings.max_bytes_per_second = config.upload.max_bytes_per_second;
  settings.token = token;
  settings.user_agent = std::string("modeldrop/") + kVersion;
  return settings;
}

// Repeats `duty` every `interval` on the event loop until the timer is cancelled.
void every(asio::steady_timer& timer, std::chrono::steady_clock::duration interval, std::function<void()> duty) {
  timer.expires_after(interval);
  timer.async_wait([&timer, interval, duty = std::move(duty)](boost::system::error_code ec) mutable {
    if (ec) return;
    duty();
    every(timer, interval, std::move(duty));
  });
}

class Daemon {
 public:
  explicit Daemon(DaemonSetup setup) : setup_(std::move(setup)) {}

  int run();

 private:
  int open_store();
  int listen_for_metrics();
  int start_metrics();
  void start_periodic_duties();
  void heartbeat();
  void check_token_files();
  void apply_token_changes(const std::vector<ApiTokens::Change>& changes);
  void record_watch_tokens();
  void reload();
  void shutdown();

  DaemonSetup setup_;
  SystemClock clock_;
  asio::io_context io_;
  SystemdNotifier notifier_;
  // Declared before the store so it is released after the daemon row is unregistered.
  std::optional<store::DaemonLock> daemon_lock_;
  std::optional<store::JobStore> opened_store_;
  std::unique_ptr<store::StoreWorker> worker_;
  std::unique_ptr<StoreClient> store_;
  std::unique_ptr<upload::UploadPool> pool_;
  std::unique_ptr<ApiTokens> tokens_;  // the global token and each watch's token_file
  JobEvents events_;
  std::unique_ptr<UploadScheduler> scheduler_;
  std::unique_ptr<JobFileWork> files_;
  std::unique_ptr<PreflightStage> preflight_;
  std::unique_ptr<WatchIntake> intake_;
  std::unique_ptr<HookDispatch> hooks_;
  std::unique_ptr<ModelRegistrar> registrar_;
  std::unique_ptr<watch::DropWatcher> watcher_;
  std::unique_ptr<asio::signal_set> signals_;
  // The Prometheus endpoint, when metrics.listen is set.
  std::unique_ptr<metrics::DaemonMetrics> metrics_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::unique_ptr<metrics::ScrapeCollector> scrape_;
  asio::steady_timer heartbeat_timer_{io_};
  asio::steady_timer poll_timer_{io_};
  asio::steady_timer token_timer_{io_};
  asio::steady_timer watchdog_timer_{io_};
  asio::steady_timer shutdown_deadline_{io_};
  QueueCounts counts_;
  int heartbeats_ = 0;
  bool stopping_ = false;
};

int Daemon::open_store() {
  std::vector<std::string> warnings;
  auto opened = store::JobStore::open_for_daemon(setup_.config.database, {}, &warnings);
  for (const auto& warning : warnings) spdlog::warn("{}", warning);
  if (!opened) {
    spdlog::error("database {}: {}", setup_.config.database.string(), opened.error().message);
    return exit_code::kDatabaseUnavailable;
  }
  auto lock = store::DaemonLock::try_acquire(setup_.config.database);
  if (!lock) {
    spdlog::error("database {}: {}", setup_.config.database.string(), lock.error().message);
    return exit_code::kDatabaseUnavailable;
  }
  if (!*lock) {
    auto record = opened->daemon_record();
    const std::string pid = record && *record ? " (pid " + std::to_string((*record)->pid) + ")" : "";
    spdlog::error("another modeldropd{} is already running on {}: it holds {}", pid, setup_.config.database.string(),
                  store::DaemonLock::file_for(setup_.config.database).string());
    return exit_code::kRuntimeError;
  }
  daemon_lock_.emplace(std::move(**lock));
  const WallTime now = clock_.now();
  // Holding the lock proves any other daemon row stale, even if its pid is alive again.
  if (auto registered = opened->register_daemon(::getpid(), kVersion, now, store::JobStore::OtherDaemons::known_gone);
      !registered) {
    spdlog::error("{}", registered.error().message);
    return exit_code::kRuntimeError;
  }
  auto recovered = opened->recover_after_crash(now);
  if (!recovered) {
    spdlog::error("database {}: crash recovery failed: {}", setup_.config.database.string(), recovered.error().message);
    return exit_code::kDatabaseUnavailable;
  }
  if (recovered->jobs_requeued > 0) {
    spdlog::warn("{} job(s) were uploading when modeldropd last stopped; queued again", recovered->jobs_requeued);
  }
  opened_store_.emplace(std::move(*opened));
  return exit_code::kSuccess;
}

// Binds the endpoint before anything else starts: a port in use stops the daemon at once.
int Daemon::listen_for_metrics() {
  if (!setup_.config.metrics.listen) return exit_code::kSuccess;
  metrics_ = std::make_unique<metrics::DaemonMetrics>(kVersion);
  auto server = metrics::MetricsServer::start(io_, *setup_.config.metrics.listen, [this](auto reply) {
    if (scrape_) scrape_->collect(std::move(reply));
  });
  if (!server) {
    spdlog::error("{}", server.error().message);
    return exit_code::kRuntimeError;
  }
  metrics_server_ = std::move(*server);
  return exit_code::kSuccess;
}

// Once the store is open: the database gauges' own connection and the event subscriptions.
int Daemon::start_metrics() {
  if (!metrics_) return exit_code::kSuccess;
  auto reader = metrics::DatabaseGaugeReader::open(setup_.config.database);
  if (!reader) {
    spdlog::error("metrics: {}", reader.error().message);
    return exit_code::kRuntimeError;
  }
  scrape_ = std::make_unique<metrics::ScrapeCollector>(io_, *metrics_, std::move(*reader), clock_,
                                                       [this](metrics::DaemonMetrics& m) {
                                                         const auto holds = scheduler_->snapshot().holds;
                                                         m.set_holds({holds.auth, holds.rate_limit, holds.paused});
                                                       });
  events_.on_attempt_finished([this](const AttemptFinished& e) {
    metrics_->attempt_finished({e.outcome, e.http_status, e.bytes_sent, e.job.size_bytes, e.elapsed});
  });
  // Every API answer passes the pool's exchange observer: uploads, the auth probe, status checks.
  pool_->set_exchange_observer([this](const upload::ExchangeSeen& exchange) {
    if (exchange.http_status) metrics_->api_response(*exchange.http_status);
  });
  spdlog::info("metrics: serving http://{}/metrics", metrics_server_->local_address());
  return exit_code::kSuccess;
}

// SIGTERM, SIGINT and SIGHUP would kill the process with their default action until the
// signal_set below handles them; blocked until then, they wait for it (a stop during a startup
// that waits for an outside write lock still ends in an orderly exit 0). Threads started
// meanwhile inherit the mask, so the signals are delivered to the main thread.
void block_stop_signals(bool block) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &signals, nullptr);
}

int Daemon::run() {
  block_stop_signals(true);
  spdlog::info("modeldropd {} starting (config {}, database {})", kVersion, setup_.config_path.string(),
               setup_.config.database.string());
  register_secret(*setup_.token.token);
  spdlog::info("API token from {}", setup_.token.source);
  for (const auto& warning : setup_.token.warnings) spdlog::warn("{}", warning);
  // Each watch's token_file is read here too; one that cannot be used holds only its jobs.
  tokens_ = std::make_unique<ApiTokens>(setup_.token, setup_.config, config::TokenEnvironment::from_process());

  // 1. Store: create or migrate the database, claim it for this process, recover the jobs a
  //    crash left uploading. Synchronous: nothing else runs yet. The metrics port is bound
  //    first, so a port in use changes nothing.
  if (int rc = listen_for_metrics(); rc != exit_code::kSuccess) return rc;
  if (int rc = open_store(); rc != exit_code::kSuccess) return rc;
  worker_ = std::make_unique<store::StoreWorker>(std::move(*opened_store_));
  opened_store_.reset();
  store_ = std::make_unique<StoreClient>(io_, *worker_);

  // 2. Upload pool: the TLS context (system store + ca_file) and the HTTPS sessions.
  auto pool = upload::UploadPool::create(io_, pool_settings(setup_.config, *setup_.token.token));
  if (!pool) {
    spdlog::error("{}", pool.error().message);
    worker_->stop();
    return exit_code::kConfigError;
  }
  pool_ = std::move(*pool);

  // 3. Scheduler (claims due jobs, records outcomes) and the hash stage that feeds it.
  scheduler_ = std::make_unique<UploadScheduler>(io_, *store_, *pool_, clock_, events_,
                                                 UploadScheduler::Settings{setup_.config}, std::random_device{}());
  scheduler_->set_tokens(tokens_.get());
  apply_token_changes(tokens_->unusable());
  record_watch_tokens();
  files_ = std::make_unique<JobFileWork>(*store_, clock_);
  auto dispose = [this](const store::Job& job) { files_->dispose(job, setup_.config); };
  scheduler_->set_dispose(dispose);
  preflight_ = std::make_unique<PreflightStage>(io_, *store_, clock_, setup_.config, content_check_for,
                                                publish_then_dispose(events_, dispose), [this] { scheduler_->wake(); });
  wire_preflight(*scheduler_, *preflight_);
  if (int rc = start_metrics(); rc != exit_code::kSuccess) {
    worker_->stop();
    return rc;
  }

  // 3b. Completion hooks: due from the transaction that ends a job, run on a thread of their own.
  hooks_ = std::make_unique<HookDispatch>(io_, *store_, clock_, setup_.config);
  // 3c. Model registration: a succeeded job that registers a model starts it (or a restart resumes it).
  registrar_ = std::make_unique<ModelRegistrar>(io_, *store_, *pool_, clock_);
  events_.on_job_finished([this](const JobFinished& finished) {
    if (finished.job.state == store::JobState::succeeded && finished.job.model) registrar_->wake();
  });

  // 4. Watcher: every watch is added before any directory is scanned, so no file slips
  //    between the scan and the watch (docs/files.md).
  intake_ = std::make_unique<WatchIntake>(
      io_, *store_, clock_,
      [this] {
        preflight_->sweep();
        scheduler_->wake();
      },
      [this](const store::Job& job) {
        if (!after_action_moves_file(job, setup_.config)) return;
        spdlog::warn(
            "job {}: {} is still where it was found after the job {} (modeldropd stopped before moving it); "
            "doing it now",
            job.id, job.current_path->string(), store::to_string(job.state));
        files_->dispose(job, setup_.config);
      });
  intake_->set_ended(publish_then_dispose(events_, dispose));  // a broken sidecar fails its job
  files_->set_leaving([this](const std::filesystem::path& path) { intake_->expect_removal(path); });
  watcher_ = std::make_unique<watch::DropWatcher>(io_, setup_.config.watch, *intake_);
  watcher_->start();

  // 5. Signals, periodic duties, then tell systemd we are ready.
  signals_ = std::make_unique<asio::signal_set>(io_, SIGTERM, SIGINT, SIGHUP);
  std::function<void(boost::system::error_code, int)> on_signal = [this, &on_signal](boost::system::error_code ec,
                                                                                     int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      reload();
    } else if (stopping_) {
      spdlog::warn("second stop signal: exiting at once (interrupted uploads are recovered at the next start)");
      std::_Exit(exit_code::kSuccess);
    } else {
      spdlog::info("{}: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      shutdown();
    }
    signals_->async_wait(on_signal);
  };
  signals_->async_wait(on_signal);
  block_stop_signals(false);  // a signal that arrived during startup is handled now
  preflight_->sweep();
  scheduler_->start();
  hooks_->start();
  registrar_->start();
  start_periodic_duties();
  notifier_.ready();
  spdlog::info("ready: watching {} director{}", setup_.config.watch.size(),
               setup_.config.watch.size() == 1 ? "y" : "ies");

  io_.run();

  // The loop has ended: every component is idle; the store thread commits what is queued.
  scrape_.reset();
  metrics_server_.reset();
  watcher_.reset();
  hooks_.reset();
  registrar_.reset();
  preflight_->stop();
  files_->stop();  // a move in progress ends and its new path reaches the store below
  pool_.reset();
  worker_->stop();
  if (worker_->abandoned_operations() > 0) {
    spdlog::error(
        "stopped without saving the last changes (see above): the next start finds the archives again; "
        "an upload whose success was not saved is sent again");
    return exit_code::kRuntimeError;
  }
  spdlog::info("stopped");
  return exit_code::kSuccess;
}

void Daemon::start_periodic_duties() {
  heartbeat();
  every(heartbeat_timer_, kHeartbeatInterval, [this] { heartbeat(); });
  every(poll_timer_, kChangePollInterval, [this] {
    store_->call([](store::JobStore& s) { return s.external_change_seen(); },
                 [this](Result<bool> changed) {
                   if (changed && *changed && !stopping_) {
                     scheduler_->external_change();
                     preflight_->sweep();
                   }
                 });
  });
  every(token_timer_, kTokenCheckInterval, [this] { check_token_files(); });
  // The watchdog is fed from the event loop itself, so a wedged loop gets restarted.
  if (auto interval = notifier_.watchdog_interval()) {
    notifier_.watchdog();
    every(watchdog_timer_, *interval, [this] { notifier_.watchdog(); });
  }
}

void Daemon::heartbeat() {
  const auto snapshot = scheduler_->snapshot();
  const bool count_now = heartbeats_++ % 3 == 0;  // the per-state counts are a table scan: every ~6 s
  store_->call(
      [now = clock_.now(), rate = snapshot.rate_bytes_per_s,
       count_now](store::JobStore& s) -> Result<std::optional<std::vector<store::StateSummary>>> {
        if (auto r = s.heartbeat(now, rate); !r) return r.error();
        if (!count_now) return std::optional<std::vector<store::StateSummary>>{};
        auto summary = s.summary();
        if (!summary) return summary.error();
        return std::optional<std::vector<store::StateSummary>>{std::move(*summary)};
      },
      [this, snapshot](Result<std::optional<std::vector<store::StateSummary>>> result) {
        if (!result) {
          spdlog::warn("store: heartbeat failed: {}", result.error().message);
          return;
        }
        if (*result) {
          counts_ = {};
          for (const auto& row : **result) {
            switch (row.state) {
              case store::JobState::pending:
                counts_.pending = row.jobs;
                break;
              case store::JobState::uploading:
                counts_.uploading = row.jobs;
                break;
              case store::JobState::succeeded:
                counts_.succeeded = row.jobs;
                break;
              case store::JobState::failed:
                counts_.failed = row.jobs;
                break;
              case store::JobState::cancelled:
                break;
            }
          }
        }
        QueueCounts counts = counts_;
        counts.uploading = static_cast<std::int64_t>(snapshot.uploading);
        notifier_.status(format_status_line(counts, snapshot.rate_bytes_per_s, snapshot.held_reason));
      });
}

// A new global token goes to the pool (which sends it for every job without a token_file);
// a token file's new token ends its jobs' hold; one that broke holds them.
void Daemon::apply_token_changes(const std::vector<ApiTokens::Change>& changes) {
  for (const auto& change : changes) {
    if (!change.key) {
      setup_.token = tokens_->global();
      pool_->apply(pool_settings(setup_.config, *setup_.token.token));
      scheduler_->token_changed();
      if (registrar_) registrar_->token_changed();  // registrations use the global token
    } else if (change.unusable) {
      scheduler_->token_unusable(change.key, *change.unusable);
    } else {
      scheduler_->token_changed(change.key);
    }
  }
}

void Daemon::check_token_files() {
  apply_token_changes(tokens_->check());
}

// Jobs name their token by the token_file their watch had when they were queued; a watch's
// new token_file (a fixed path in a reloaded config) reaches its unfinished jobs.
void Daemon::record_watch_tokens() {
  store_->run([watches = setup_.config.watch, now = clock_.now()](store::JobStore& s) {
    for (const auto& watch : watches) {
      auto changed = s.set_watch_token_file(watch.path, watch.token_file, now);
      if (!changed) {
        spdlog::warn("store: cannot record the token_file of watch {}: {}", watch.path.string(),
                     changed.error().message);
      } else if (*changed > 0) {
        spdlog::info("{} unfinished job(s) of watch {} now use {}", *changed, watch.path.string(),
                     watch.token_file ? "token_file " + *watch.token_file : std::string("the global token"));
      }
    }
  });
}

void Daemon::reload() {
  notifier_.reloading();
  spdlog::info("SIGHUP: reloading {}", setup_.config_path.string());
  auto loaded = config::load_config(setup_.config_path);
  if (!loaded.ok()) {
    spdlog::error("reload rejected, the running configuration stays: {}{}", loaded.problems.front(),
                  loaded.problems.size() > 1 ? " (and " + std::to_string(loaded.problems.size() - 1) + " more)" : "");
    notifier_.ready();
    return;
  }
  config::Config next = std::move(*loaded.config);
  if (next.database != setup_.config.database) {
    spdlog::warn("database changed to {}: takes effect only after a restart; still using {}", next.database.string(),
                 setup_.config.database.string());
    next.database = setup_.config.database;
  }
  if (next.metrics.listen != setup_.config.metrics.listen) {
    const auto shown = [](const config::MetricsConfig& m) { return m.listen ? m.listen->text() : std::string("off"); };
    spdlog::warn("metrics.listen changed to {}: takes effect only after a restart; still {}", shown(next.metrics),
                 shown(setup_.config.metrics));
    next.metrics = setup_.config.metrics;
  }
  auto token = config::find_token(next.api, config::TokenEnvironment::from_process());
  if (token.error || !token.token) {
    spdlog::error("reload rejected, the running configuration stays: {}", token.error.value_or("no API token found"));
    notifier_.ready();
    return;
  }
  setup_logging({next.log.level, next.log.format, stderr_is_journal()});
  setup_.config = std::move(next);
  pool_->apply(pool_settings(setup_.config, *setup_.token.token));
  apply_token_changes(tokens_->reload(std::move(token), setup_.config));
  record_watch_tokens();
  watcher_->reconfigure(setup_.config.watch);
  scheduler_->reconfigure(UploadScheduler::Settings{setup_.config});
  preflight_->reconfigure(setup_.config);
  hooks_->reconfigure(setup_.config);
  spdlog::info("configuration reloaded: {} watch director{}", setup_.config.watch.size(),
               setup_.config.watch.size() == 1 ? "y" : "ies");
  notifier_.ready();
}

void Daemon::shutdown() {
  stopping_ = true;
  notifier_.stopping();
  if (metrics_server_) metrics_server_->stop();
  watcher_->stop();
  hooks_->stop();      // a hook cut short stays due and runs again at the next start
  registrar_->stop();  // a step cut short is taken again at the next start
  heartbeat_timer_.cancel();
  poll_timer_.cancel();
  token_timer_.cancel();
  shutdown_deadline_.expires_after(kShutdownDeadline);
  shutdown_deadline_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    spdlog::warn("uploads did not stop within {}s; exiting anyway (they are recovered at the next start)",
                 std::chrono::duration_cast<std::chrono::seconds>(kShutdownDeadline).count());
    io_.stop();
  });
  scheduler_->stop([this] {
    store_->call([](store::JobStore& s) { return s.unregister_daemon(); },
                 [this](Result<void> r) {
                   if (!r) spdlog::warn("store: cannot unregister: {}", r.error().message);
                   watchdog_timer_.cancel();
                   shutdown_deadline_.cancel();
                   signals_->cancel();
                   io_.stop();
                 });
  });
}

}  // namespace

int run_daemon(DaemonSetup setup) {
  return Daemon(std::move(setup)).run();
}

}  // namespace modeldrop::app
