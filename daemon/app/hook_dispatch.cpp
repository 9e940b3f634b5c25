#include "app/hook_dispatch.hpp"

#include "app/job_file_actions.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;

// How soon a hook made due outside the scheduler (`modeldrop cancel`, a restart) runs.
constexpr auto kLookInterval = 1s;
constexpr std::size_t kDueBatch = 64;

void log_hook_end(const hooks::HookResult& result, Duration timeout) {
  switch (result.end) {
    case hooks::HookEnd::exited:
      if (result.exit_code == 0) {
        spdlog::info("job {}: hook finished", result.job_id);
      } else {
        spdlog::warn("job {}: hook failed with exit status {} (not retried)", result.job_id, result.exit_code);
      }
      return;
    case hooks::HookEnd::signalled:
      spdlog::warn("job {}: hook killed by signal {} (not retried)", result.job_id, result.signal);
      return;
    case hooks::HookEnd::timed_out:
      spdlog::warn("job {}: hook killed after {} (hooks.timeout; not retried)", result.job_id,
                   format_duration(timeout));
      return;
    case hooks::HookEnd::failed_to_start:
      spdlog::warn("job {}: hook could not start: {} (not retried)", result.job_id, result.error);
      return;
  }
}

}  // namespace

HookDispatch::HookDispatch(boost::asio::io_context& io, StoreClient& store, const Clock& clock, config::Config config)
    : io_(io), store_(store), clock_(clock), config_(std::move(config)), look_timer_(io) {
  runner_ = std::make_unique<hooks::HookRunner>(
      [this](const hooks::HookResult& result) { boost::asio::post(io_, [this, result] { on_finished(result); }); });
}

HookDispatch::~HookDispatch() {
  stop();
}

void HookDispatch::start() {
  store_.run([enabled = config_.hooks.any()](store::JobStore& s) {
    if (auto r = s.set_hooks_enabled(enabled); !r)
      spdlog::error("store: cannot record the hooks setting: {}", r.error().message);
  });
  look();
  arm_periodic_look();
}

void HookDispatch::reconfigure(config::Config config) {
  const bool hooks_changed = config.hooks != config_.hooks;
  config_ = std::move(config);
  if (hooks_changed) {
    store_.run([enabled = config_.hooks.any()](store::JobStore& s) {
      if (auto r = s.set_hooks_enabled(enabled); !r)
        spdlog::error("store: cannot record the hooks setting: {}", r.error().message);
    });
  }
}

void HookDispatch::look() {
  if (stopped_ || looking_) return;
  looking_ = true;
  store_.call([](store::JobStore& s) { return s.due_hooks(kDueBatch); },
              [this](Result<std::vector<store::DueHook>> due) {
                looking_ = false;
                if (!due) {
                  spdlog::warn("store: cannot look for due hooks: {}", due.error().message);
                  return;
                }
                on_due(std::move(*due));
              });
}

void HookDispatch::arm_periodic_look() {
  look_timer_.expires_after(kLookInterval);
  look_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    look();
    arm_periodic_look();
  });
}

void HookDispatch::stop() {
  if (stopped_) return;
  stopped_ = true;
  look_timer_.cancel();
  runner_->stop();
}

void HookDispatch::on_due(std::vector<store::DueHook> due) {
  if (stopped_) return;
  for (const auto& hook : due) {
    if (running_.contains(hook.job) || file_still_to_move(hook)) continue;
    const auto& argv = hook.state == store::JobState::succeeded ? config_.hooks.on_success : config_.hooks.on_failure;
    running_.insert(hook.job);
    if (!argv) {
      // No hook of this kind is configured (any more): nothing is owed.
      on_finished_without_run(hook.job);
      continue;
    }
    runner_->submit(run_for(hook, *argv));
  }
}

void HookDispatch::on_finished_without_run(store::JobId job) {
  store_.call([job, now = clock_.now()](store::JobStore& s) { return s.finish_hook(job, now); },
              [this, job](Result<void> r) {
                if (!r) spdlog::error("store: job {}: cannot record that it owes no hook: {}", job, r.error().message);
                running_.erase(job);
              });
}

void HookDispatch::on_finished(const hooks::HookResult& result) {
  log_hook_end(result, config_.hooks.timeout);
  store_.call([job = result.job_id, now = clock_.now()](store::JobStore& s) { return s.finish_hook(job, now); },
              [this, job = result.job_id](Result<void> r) {
                // Not recorded: the hook runs again at the next start (at least once).
                if (!r) spdlog::error("store: job {}: cannot record that its hook ran: {}", job, r.error().message);
                running_.erase(job);
              });
}

// The hook follows the job's after-action: it is told where the archive ended up.
bool HookDispatch::file_still_to_move(const store::DueHook& hook) const {
  store::Job job;
  job.state = hook.state;
  job.watch_dir = hook.watch_dir;
  return after_action_moves_file(job, config_) && hook.current_path == hook.path;
}

hooks::HookRun HookDispatch::run_for(const store::DueHook& hook, const std::vector<std::string>& argv) const {
  const auto text = [](const auto& value) -> std::string {
    if (!value) return {};
    if constexpr (std::is_same_v<std::decay_t<decltype(*value)>, std::filesystem::path>) {
      return value->string();
    } else {
      return *value;
    }
  };
  hooks::HookRun run;
  run.job_id = hook.job;
  run.name = hook.state == store::JobState::succeeded ? "on_success" : "on_failure";
  run.argv = argv;
  run.timeout = config_.hooks.timeout;
  run.environment = {
      {"MODELDROP_JOB_ID", std::to_string(hook.job)},  {"MODELDROP_STATE", std::string(store::to_string(hook.state))},
      {"MODELDROP_PATH", text(hook.current_path)},     {"MODELDROP_FILE_ID", text(hook.file_id)},
      {"MODELDROP_PROJECT_ID", text(hook.project_id)}, {"MODELDROP_MODEL_NAME", text(hook.model_name)},
      {"MODELDROP_ERROR", text(hook.last_error)}};
  return run;
}

}  // namespace modeldrop::app
