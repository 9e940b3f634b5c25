#pragma once

#include "config/config.hpp"
#include "config/token.hpp"

#include <filesystem>

namespace modeldrop::app {

struct DaemonSetup {
  std::filesystem::path config_path;  // re-read on SIGHUP
  config::Config config;
  config::TokenLookup token;  // found: the command refuses to start without one
};

// Runs the daemon until SIGTERM/SIGINT; returns the process exit code (docs/files.md and docs/cli.md).
int run_daemon(DaemonSetup setup);

}  // namespace modeldrop::app
