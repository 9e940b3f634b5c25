#include "cli/cli_command.hpp"
#include "common/exit_codes.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  try {
    return modeldrop::cli::run_cli_command(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modeldrop: fatal: " << e.what() << "\n";
    return modeldrop::exit_code::kRuntimeError;
  }
}
