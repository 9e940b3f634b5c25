#pragma once

namespace modeldrop::app {

// Everything `modeldropd` does, from its arguments to its exit code (CONTRACT §2, §7, §8).
int run_daemon_command(int argc, char** argv);

}  // namespace modeldrop::app
