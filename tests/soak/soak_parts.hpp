#pragma once

// The moving parts of the chaos soak (README.md here): the archives and their writers, the
// outside write-lock holder, the filesystem filler, and the event log the report is built from.
// Each part runs on its own thread until `stop` is set; everything they share is behind a mutex
// or atomic.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace modeldrop::soak {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// One archive the soak writes into a drop directory.
struct Archive {
  int index = 0;
  std::string name;  // unique, with an archive extension
  std::filesystem::path dir;
  std::uint64_t size = 0;
  bool careful = true;  // temp name + rename; else written in place, slowly
  std::uint64_t content_seed = 0;
  std::chrono::milliseconds due{0};  // when to start writing, since the soak's start
  // Filled in by the writer:
  std::string sha256;
  bool written = false;
  int enospc_failures = 0;
};

// The archives to write: `count` of them, sizes mixed (mostly small, a few large), spread
// evenly over `spread`, alternating between the drop directories.
std::vector<Archive> plan_archives(int count, std::uint64_t seed, const std::vector<std::filesystem::path>& dirs,
                                   std::chrono::milliseconds spread);

// Timestamped happenings the report and the duplicate classification use.
struct EventLog {
  struct Kill {
    int pid = 0;
    WallTime at;
  };
  struct Period {
    WallTime from;
    WallTime to;
  };
  std::mutex mutex;
  std::vector<Kill> kills;
  std::vector<Period> lock_periods;
  std::vector<Period> enospc_phases;
  std::vector<std::string> problems;  // anything that fails the soak

  void problem(std::string text) {
    std::lock_guard lock(mutex);
    problems.push_back(std::move(text));
  }
};

// Sleeps up to `duration`, returning early (false) when `stop` is set.
bool sleep_unless_stopped(std::chrono::milliseconds duration, const std::atomic<bool>& stop);

// Writes the archives in `archives` whose index % writers == writer, each when it is due.
// A write that fails with ENOSPC is removed and tried again later (the writer never leaves a
// partial archive behind); any other error is a problem.
void run_writer(std::vector<Archive>& archives, int writer, int writers, SteadyTime start, std::atomic<bool>& stop,
                std::atomic<int>& written, std::atomic<int>& enospc, EventLog& events);

// Takes the database's write lock (BEGIN IMMEDIATE) for 0.5..3 s at random moments, as an
// admin's sqlite3 session would, until `stop`.
void run_lock_holder(const std::filesystem::path& database, std::uint64_t seed, std::atomic<bool>& stop,
                     EventLog& events);

// From `phase_start` on, keeps the filesystem of `dir` full with a ballast file (topped up as
// space frees) for `phase_length`, then removes it.
void run_filler(const std::filesystem::path& dir, SteadyTime phase_start, std::chrono::milliseconds phase_length,
                std::atomic<bool>& stop, EventLog& events);

std::string sha256_hex_of_file(const std::filesystem::path& file);

}  // namespace modeldrop::soak
