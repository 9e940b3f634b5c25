#pragma once

namespace modeldrop::cli {

// Everything `modeldrop` does, from its arguments to its exit code (docs/cli.md).
int run_cli_command(int argc, char** argv);

}  // namespace modeldrop::cli
