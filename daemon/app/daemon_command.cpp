#include "app/daemon_command.hpp"

#include "app/daemon.hpp"

#include "common/exit_codes.hpp"
#include "common/logging.hpp"
#include "common/version.hpp"
#include "config/config_loader.hpp"
#include "config/token.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <iostream>

namespace modeldrop::app {
namespace {

// --check-config: every problem, or "config OK". A token that cannot be found is only a
// warning here (systemd may hand it over as a credential); a broken token_file is an error.
int check_config(const std::filesystem::path& path) {
  const auto loaded = config::load_config(path);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    return exit_code::kConfigError;
  }
  const auto token = config::find_token(loaded.config->api, config::TokenEnvironment::from_process());
  for (const auto& warning : token.warnings) std::cerr << "warning: " << warning << "\n";
  if (token.error) {
    std::cerr << path.string() << ": " << *token.error << "\n";
    return exit_code::kConfigError;
  }
  if (!token.token) {
    std::cerr << "warning: no API token found (api.token_file, $CREDENTIALS_DIRECTORY/api-token, "
                 "$NEBIUS_API_KEY); the daemon will refuse to start without one\n";
  }
  std::cout << "config OK\n";
  return exit_code::kSuccess;
}

}  // namespace

int run_daemon_command(int argc, char** argv) {
  CLI::App cli{"modeldropd: resumable bulk-upload daemon for model archives (Nebius Token Factory)", "modeldropd"};
  std::optional<std::string> config_flag;
  bool check_only = false;
  cli.add_option("--config", config_flag,
                 "configuration file (default $MODELDROP_CONFIG, else /etc/modeldrop/modeldrop.yaml)");
  cli.add_flag("--check-config", check_only, "validate the configuration, print 'config OK' or every problem");
  cli.set_version_flag("--version", std::string("modeldropd ") + kVersion);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? exit_code::kSuccess : exit_code::kUsage;
  }
  const auto path = config::config_path_from(config_flag);
  if (check_only) return check_config(path);

  const auto loaded = config::load_config(path);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    return exit_code::kConfigError;
  }
  setup_logging({loaded.config->log.level, loaded.config->log.format, stderr_is_journal()});
  auto token = config::find_token(loaded.config->api, config::TokenEnvironment::from_process());
  if (token.error) {
    spdlog::error("{}: {}", path.string(), *token.error);
    return exit_code::kConfigError;
  }
  if (!token.token) {
    spdlog::error(
        "no API token found: set api.token_file, or provide the systemd credential api-token "
        "(/etc/modeldrop/api-token), or NEBIUS_API_KEY");
    return exit_code::kConfigError;
  }
  return run_daemon(DaemonSetup{path, std::move(*loaded.config), std::move(token)});
}

}  // namespace modeldrop::app
