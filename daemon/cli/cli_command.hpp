#pragma once

namespace modeldrop::cli {

// Everything `modeldrop` does, from its arguments to its exit code (CONTRACT §2).
int run_cli_command(int argc, char** argv);

}  // namespace modeldrop::cli
