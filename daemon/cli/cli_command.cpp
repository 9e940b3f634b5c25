#include "cli/cli_command.hpp"

#include "common/exit_codes.hpp"
#include "common/version.hpp"

#include <CLI/CLI.hpp>

namespace modeldrop::cli {

int run_cli_command(int argc, char** argv) {
  CLI::App cli{"modeldrop: see and steer the modeldrop upload queue", "modeldrop"};
  cli.set_version_flag("--version", std::string("modeldrop ") + kVersion);
  cli.require_subcommand(1);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? exit_code::kSuccess : exit_code::kUsage;
  }
  return exit_code::kSuccess;
}

}  // namespace modeldrop::cli
