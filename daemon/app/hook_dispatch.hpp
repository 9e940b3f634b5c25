#pragma once

// Finds the jobs whose completion hook is due and hands them to the HookRunner, then records
// that each ran. A hook is due from the transaction that ended its job (so a crash cannot lose
// it); it runs once the job's file has been moved or deleted, and at most once per daemon run.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "hooks/hook_runner.hpp"
#include "store/job_store.hpp"

#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <set>

namespace modeldrop::app {

class HookDispatch {
 public:
  HookDispatch(boost::asio::io_context& io, StoreClient& store, const Clock& clock, config::Config config);
  ~HookDispatch();

  // Tells the store whether jobs owe hooks from now on, and runs those due from before.
  void start();
  void reconfigure(config::Config config);
  // A job may have ended: look for due hooks now rather than at the next periodic look.
  void look();
  // Running hooks are killed; they stay due and run again at the next start.
  void stop();

 private:
  void on_due(std::vector<store::DueHook> due);
  void on_finished(const hooks::HookResult& result);
  void on_finished_without_run(store::JobId job);
  [[nodiscard]] bool file_still_to_move(const store::DueHook& hook) const;
  [[nodiscard]] hooks::HookRun run_for(const store::DueHook& hook, const std::vector<std::string>& argv) const;
  void arm_periodic_look();

  boost::asio::io_context& io_;
  StoreClient& store_;
  const Clock& clock_;
  config::Config config_;
  std::set<store::JobId> running_;  // handed to the runner, not yet recorded as done
  boost::asio::steady_timer look_timer_;
  bool looking_ = false;
  bool stopped_ = false;
  std::unique_ptr<hooks::HookRunner> runner_;  // last: its thread stops before the rest goes
};

}  // namespace modeldrop::app
