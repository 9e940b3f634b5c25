#pragma once

// A real modeldropd against the real fake API over TLS on 127.0.0.1, in throwaway
// directories: the end-to-end tests of docs/files.md.

#include "store/job_store.hpp"
#include "support/child_process.hpp"
#include "support/fake_api/fake_api.hpp"
#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace modeldrop::test {

// What a test may change in the generated config (then call write_config() again).
struct DaemonConfigOptions {
  std::string database = "state/jobs.db";  // relative to the test directory
  std::string incoming_watch;              // extra keys of the `incoming` entry, e.g. "    recursive: true\n"
  // The `incoming` entry's `validate`: drop() writes pseudo-random bytes, not archives, so the
  // checks are off unless a test drops real archives (tests/support/archive_corpus).
  std::string validate = "none";
  std::string upload;  // extra keys of `upload:`, e.g. "  dedupe: false\n"
  std::string log_format = "text";
  std::string top_level;  // extra top-level sections, e.g. "metrics:\n  listen: 127.0.0.1:0\n"
};

// The daemon row's held_reason, read through a connection of its own (none when unreadable).
std::optional<std::string> held_reason(const std::filesystem::path& database);

// One job and its attempts, read through a connection of its own (none while unreadable).
std::optional<store::JobWithAttempts> job_with_attempts(const std::filesystem::path& database, store::JobId id);

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The config the daemon runs with; `extra_watch` adds a second watch entry.
  std::string config_text(const std::string& extra = "") const;
  // Also points database_ at config_options_.database.
  void write_config(const std::string& extra = "");

  // `wrapper` goes before the daemon's own argv (e.g. setpriv to run it as another user).
  std::unique_ptr<ChildProcess> start_daemon(const std::vector<std::string>& wrapper = {});
  // Started and past READY (its log says "ready").
  std::unique_ptr<ChildProcess> start_ready_daemon(const std::vector<std::string>& wrapper = {});

  // The real `modeldrop` CLI on this test's database.
  ProcessResult run_cli(const std::vector<std::string>& args) const;

  // Writes `bytes` pseudo-random bytes under a temporary name and renames it into the drop
  // directory, as careful writers do. Returns the final path.
  std::filesystem::path drop(const std::string& name, std::size_t bytes, const std::filesystem::path& dir = {});

  std::vector<store::Job> jobs() const;
  bool all_jobs_in(store::JobState state, std::size_t count) const;

  static std::string sha256_of(const std::filesystem::path& file);

  TempDir dir_;
  DaemonConfigOptions config_options_;
  std::map<std::string, std::string> daemon_environment_;  // added to the daemon's environment
  std::filesystem::path incoming_;
  std::filesystem::path database_;
  std::filesystem::path config_;
  TestPki pki_;
  std::unique_ptr<FakeApi> api_;
};

}  // namespace modeldrop::test
