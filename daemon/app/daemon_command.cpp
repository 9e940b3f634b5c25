#include "app/daemon_command.hpp"

#include "app/daemon.hpp"

#include "common/bash_completion.hpp"
#include "common/exit_codes.hpp"
#include "common/logging.hpp"
#include "common/version.hpp"
#include "config/config_loader.hpp"
#include "config/token.hpp"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace modeldrop::app {
namespace {

// Where the config points on this machine, as a user would want it judged: a database
// directory that does not exist is most likely a typo, and creating it would start a second,
// empty queue, so it is an error (except the packaged default, which the package and
// systemd-tmpfiles create); a missing watch directory is only a warning, since the daemon
// waits for it and watches it once it appears.
struct PlacementReport {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

PlacementReport check_placement(const config::Config& config, const std::filesystem::path& file) {
  PlacementReport report;
  std::error_code ec;
  const auto db_dir = config.database.parent_path();
  if (config.database != config::Config{}.database && !db_dir.empty() && !std::filesystem::is_directory(db_dir, ec)) {
    report.errors.push_back(file.string() + ": database: the directory " + db_dir.string() +
                            " does not exist; create it (modeldropd will not start a new queue in a directory "
                            "it would have to invent) or correct the path");
  }
  for (std::size_t i = 0; i < config.watch.size(); ++i) {
    const auto& path = config.watch[i].path;
    if (!std::filesystem::is_directory(path, ec)) {
      report.warnings.push_back(
          fmt::format("{}: watch[{}].path: {} does not exist yet; modeldropd waits for it and "
                      "watches it once it appears",
                      file.string(), i, path.string()));
    }
  }
  return report;
}

// --check-config: every problem, or "config OK". A token that cannot be found is only a
// warning here (systemd may hand it over as a credential); a broken token_file is an error, a
// watch's as much as api's (except one in the credentials directory, which only the service has).
int check_config(const std::filesystem::path& path) {
  const auto loaded = config::load_config(path);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    return exit_code::kConfigError;
  }
  const auto placement = check_placement(*loaded.config, path);
  for (const auto& warning : placement.warnings) std::cerr << "warning: " << warning << "\n";
  for (const auto& error : placement.errors) std::cerr << error << "\n";
  const auto token = config::find_token(loaded.config->api, config::TokenEnvironment::from_process());
  for (const auto& warning : token.warnings) std::cerr << "warning: " << warning << "\n";
  if (token.error) {
    std::cerr << path.string() << ": " << *token.error << "\n";
    return exit_code::kConfigError;
  }
  bool watch_token_errors = false;
  const auto environment = config::TokenEnvironment::from_process();
  for (std::size_t i = 0; i < loaded.config->watch.size(); ++i) {
    const auto& name = loaded.config->watch[i].token_file;
    if (!name) continue;
    const auto where = fmt::format("{}: watch[{}].token_file", path.string(), i);
    auto file = config::resolve_token_file(*name, environment);
    if (!file) {
      // Outside the service, systemd's credentials directory does not exist: not checked here.
      std::cerr << "warning: " << where << ": " << file.error().message << "; not checked here\n";
      continue;
    }
    auto read = config::read_token_file(*file);
    for (const auto& warning : read.warnings) std::cerr << "warning: " << warning << "\n";
    if (!read.token) {
      std::cerr << where << ": cannot use " << file->string() << ": " << read.error << "\n";
      watch_token_errors = true;
    }
  }
  if (!placement.errors.empty() || watch_token_errors) return exit_code::kConfigError;
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
                 "configuration file (default $MODELDROP_CONFIG, else /etc/modeldrop/modeldrop.yaml)")
      ->type_name("FILE");
  cli.add_flag("--check-config", check_only, "validate the configuration, print 'config OK' or every problem");
  cli.set_version_flag("--version", std::string("modeldropd ") + kVersion);
  bool completion = false;
  cli.add_flag("--bash-completion", completion, "print the bash completion script")->group("");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? exit_code::kSuccess : exit_code::kUsage;
  }
  if (completion) {
    std::cout << bash_completion_script(cli, "modeldropd");
    return exit_code::kSuccess;
  }
  const auto path = config::config_path_from(config_flag);
  if (check_only) return check_config(path);

  const auto loaded = config::load_config(path);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    return exit_code::kConfigError;
  }
  setup_logging({loaded.config->log.level, loaded.config->log.format, stderr_is_journal()});
  const auto placement = check_placement(*loaded.config, path);
  for (const auto& warning : placement.warnings) spdlog::warn("{}", warning);
  if (!placement.errors.empty()) {
    for (const auto& error : placement.errors) spdlog::error("{}", error);
    return exit_code::kConfigError;
  }
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
