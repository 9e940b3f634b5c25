#pragma once

namespace modeldrop::app {

// Everything `modeldropd` does, from its arguments to its exit code (docs/cli.md and docs/files.md).
int run_daemon_command(int argc, char** argv);

}  // namespace modeldrop::app
