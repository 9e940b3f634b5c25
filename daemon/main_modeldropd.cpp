#include "app/daemon_command.hpp"
#include "common/exit_codes.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  // Expected failures are values; an exception reaching here is a bug, reported once.
  try {
    return modeldrop::app::run_daemon_command(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modeldropd: fatal: " << e.what() << "\n";
    return modeldrop::exit_code::kRuntimeError;
  }
}
