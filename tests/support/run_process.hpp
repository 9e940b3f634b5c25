#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace modeldrop::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct ProcessOptions {
  std::map<std::string, std::string> env_set;  // added to (or replacing in) the inherited environment
  std::vector<std::string> env_unset;
  std::string stdin_data;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
};

// Runs a real program to completion (bounded by options.timeout), capturing both streams.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

}  // namespace modeldrop::test
