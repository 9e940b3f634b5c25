// modeldrop-upload-bench: uploads files through modeldrop's UploadPool, all at once, and prints
// what it cost as one JSON line: wall time per upload (from start() to done), CPU seconds of
// the whole process, peak RSS. Used by bench/upload/run (against curl, same sink, same run) and
// by the flat-memory test.

#include "config/config.hpp"
#include "upload/source_file.hpp"
#include "upload/upload_pool.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

namespace {

using namespace modeldrop;
using Clock = std::chrono::steady_clock;

std::uint64_t peak_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

double seconds_of(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

int run(int argc, char** argv) {
  CLI::App cli{"Upload files through modeldrop's session pool and report time, CPU and peak RSS",
               "modeldrop-upload-bench"};
  upload::PoolSettings settings;
  settings.proxy_environment = {};
  std::string ca_file;
  std::vector<std::string> files;
  bool no_sha256 = false;
  std::string project;
  cli.add_option("--url", settings.api.base_url, "API base URL")->required();
  cli.add_option("--ca-file", ca_file, "extra CA bundle (the sink's test CA)");
  cli.add_option("--token", settings.token, "bearer token")->required();
  cli.add_option("--sessions", settings.sessions, "upload.sessions (default: one per file)");
  cli.add_option("--max-bytes-per-second", settings.max_bytes_per_second, "upload.max_bytes_per_second");
  cli.add_option("--io-buffer", settings.io_buffer_bytes, "bytes per file read")->capture_default_str();
  cli.add_option("--project", project, "ai_project_id");
  cli.add_flag("--no-sha256", no_sha256, "do not hash the content while sending");
  cli.add_option("files", files, "files to upload, all at once")->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 2;
  }
  if (!ca_file.empty()) settings.api.ca_file = ca_file;
  if (cli.count("--sessions") == 0) settings.sessions = static_cast<int>(files.size());
  settings.api.idle_timeout = std::chrono::seconds(60);

  boost::asio::io_context io(1);
  auto pool = upload::UploadPool::create(io, settings);
  if (!pool) {
    std::cerr << "modeldrop-upload-bench: " << pool.error().message << "\n";
    return 1;
  }
  boost::json::array results;
  bool all_accepted = true;
  const auto started = Clock::now();
  std::int64_t job = 0;
  for (const auto& file : files) {
    auto identity = upload::identify_file(file);
    if (!identity) {
      std::cerr << "modeldrop-upload-bench: " << identity.error().message << "\n";
      return 1;
    }
    upload::UploadRequest request;
    request.job_id = ++job;
    request.path = file;
    request.filename = std::filesystem::path(file).filename().string();
    request.expected = identity.value();
    request.compute_sha256 = !no_sha256;
    if (!project.empty()) request.project_id = project;
    (*pool)->start(std::move(request), nullptr, [&, file, start = Clock::now()](upload::UploadResult result) {
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      all_accepted = all_accepted && result.accepted_2xx();
      boost::json::object entry{{"file", file},
                                {"status", result.http_status ? *result.http_status : 0},
                                {"error", std::string(upload::to_string(result.error))},
                                {"message", result.error_message},
                                {"bytes_sent", result.bytes_sent},
                                {"seconds", seconds}};
      if (result.sha256) entry["sha256"] = *result.sha256;
      results.push_back(std::move(entry));
      // The kept-alive connection would hold io.run() until the server drops it.
      if (results.size() == files.size()) (*pool)->cancel_all();
    });
  }
  io.run();
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  boost::json::object report{{"wall_s", wall},
                             {"user_s", seconds_of(usage.ru_utime)},
                             {"sys_s", seconds_of(usage.ru_stime)},
                             {"vmhwm_kib", peak_rss_kib()},
                             {"results", std::move(results)}};
  std::cout << boost::json::serialize(report) << std::endl;
  return all_accepted ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modeldrop-upload-bench: fatal: " << e.what() << "\n";
    return 1;
  }
}
