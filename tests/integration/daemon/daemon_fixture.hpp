#pragma once

// A real modeldropd against the real fake API over TLS on 127.0.0.1, in throwaway
// directories: the end-to-end tests of CONTRACT §7.

#include "store/job_store.hpp"
#include "support/child_process.hpp"
#include "support/fake_api/fake_api.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace modeldrop::test {

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The config the daemon runs with; `extra_watch` adds a second watch entry.
  std::string config_text(const std::string& extra = "") const;
  void write_config(const std::string& extra = "") const;

  std::unique_ptr<ChildProcess> start_daemon();
  // Started and past READY (its log says "ready").
  std::unique_ptr<ChildProcess> start_ready_daemon();

  // Writes `bytes` pseudo-random bytes under a temporary name and renames it into the drop
  // directory, as careful writers do. Returns the final path.
  std::filesystem::path drop(const std::string& name, std::size_t bytes, const std::filesystem::path& dir = {});

  std::vector<store::Job> jobs() const;
  bool all_jobs_in(store::JobState state, std::size_t count) const;

  static std::string sha256_of(const std::filesystem::path& file);

  TempDir dir_;
  std::filesystem::path incoming_;
  std::filesystem::path database_;
  std::filesystem::path config_;
  TestPki pki_;
  std::unique_ptr<FakeApi> api_;
};

}  // namespace modeldrop::test
