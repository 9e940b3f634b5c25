// The drop -> job-row figures of a running modeldropd (settle 0s), read from its database:
//   1. rename-into-place -> the job's row is committed (p50/p99/max over --samples), one file
//      at a time, the daemon otherwise idle;
//   2. --files archives renamed into the watch directory at once -> every row committed.
// bench/daemon/queue starts the fake API and the daemon (uploads paused) and runs this.
// Usage: queue_bench --database PATH --incoming DIR [--samples N] [--files N]
#include "store/sqlite.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using modeldrop::store::Connection;

// Polls the job count cheaply: `PRAGMA data_version` changes only when another connection
// commits, so the count query runs once per daemon commit.
class JobCounter {
 public:
  explicit JobCounter(Connection connection) : db_(std::move(connection)) {}

  std::int64_t count() {
    const auto version = db_.query_int64("PRAGMA data_version");
    if (version && *version == seen_version_) return count_;
    if (version) seen_version_ = *version;
    const auto count = db_.query_int64("SELECT count(*) FROM jobs");
    if (count) count_ = *count;
    return count_;
  }

  // Waits (polling every 50 us, which bounds the figures' resolution) until at least `want`
  // rows exist; returns when they were seen, or nothing after `timeout`.
  std::optional<SteadyClock::time_point> wait_for(std::int64_t want, std::chrono::seconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (count() < want) {
      if (SteadyClock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(50us);
    }
    return SteadyClock::now();
  }

 private:
  Connection db_;
  std::int64_t seen_version_ = -1;
  std::int64_t count_ = 0;
};

void write_file(const fs::path& path, std::size_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << std::string(bytes, 'q') << path.filename().string();  // distinct content per file
}

double micros(SteadyClock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

int latency(JobCounter& jobs, const fs::path& incoming, const fs::path& staging, std::size_t samples) {
  std::vector<double> latencies;
  for (std::size_t i = 0; i < samples; ++i) {
    const std::string name = "latency-" + std::to_string(i) + ".zip";
    write_file(staging / name, 4096);
    const std::int64_t before = jobs.count();
    const auto renamed_at = SteadyClock::now();
    fs::rename(staging / name, incoming / name);
    const auto seen = jobs.wait_for(before + 1, 10s);
    if (!seen) {
      std::fprintf(stderr, "sample %zu never got a job row\n", i);
      return 1;
    }
    latencies.push_back(micros(*seen - renamed_at));
  }
  std::sort(latencies.begin(), latencies.end());
  const auto at = [&](double q) { return latencies[static_cast<std::size_t>(q * static_cast<double>(samples - 1))]; };
  std::printf("rename-into-place -> job row committed (settle 0), %zu samples: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              samples, at(0.50) / 1000, at(0.99) / 1000, latencies.back() / 1000);
  return 0;
}

int burst(JobCounter& jobs, const fs::path& incoming, const fs::path& staging, std::size_t files) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < files; ++i) {
    names.push_back("burst-" + std::to_string(i) + ".zip");
    write_file(staging / names.back(), 64);
  }
  const std::int64_t before = jobs.count();
  const auto began = SteadyClock::now();
  for (const auto& name : names) fs::rename(staging / name, incoming / name);
  const auto renamed = SteadyClock::now();
  const auto seen = jobs.wait_for(before + static_cast<std::int64_t>(files), 300s);
  if (!seen) {
    std::fprintf(stderr, "only %lld of %zu burst files got a job row\n", static_cast<long long>(jobs.count() - before),
                 files);
    return 1;
  }
  const double ms = micros(*seen - began) / 1000;
  std::printf(
      "burst of %zu renames -> all %zu job rows committed: %.0f ms after the first rename (%.0f jobs/s; "
      "the renames alone took %.0f ms)\n",
      files, files, ms, static_cast<double>(files) / (ms / 1000), micros(renamed - began) / 1000);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t samples = 500, files = 10000;
  fs::path database, incoming;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--samples") samples = std::stoul(argv[i + 1]);
    if (flag == "--files") files = std::stoul(argv[i + 1]);
    if (flag == "--database") database = argv[i + 1];
    if (flag == "--incoming") incoming = argv[i + 1];
  }
  if (samples == 0 || files == 0 || database.empty() || incoming.empty()) {
    std::fprintf(stderr, "usage: queue_bench --database PATH --incoming DIR [--samples N] [--files N]\n");
    return 2;
  }
  auto connection = Connection::open(database, modeldrop::store::OpenMode::existing_only, 5000ms);
  if (!connection) {
    std::fprintf(stderr, "%s\n", connection.error().message.c_str());
    return 1;
  }
  JobCounter jobs(std::move(*connection));
  // Staging beside the watch directory, on the same filesystem, so renames are atomic.
  const fs::path staging = incoming.parent_path() / "queue-bench-staging";
  fs::create_directories(staging);
  int rc = latency(jobs, incoming, staging, samples);
  if (rc == 0) rc = burst(jobs, incoming, staging, files);
  fs::remove_all(staging);
  return rc;
}
