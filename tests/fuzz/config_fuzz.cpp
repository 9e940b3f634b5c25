// The config loader on any text (docs/configuration.md's file as an admin might mistype it): a Config or
// a list of problems, never a crash, an uncaught exception or a hang. Every problem names the
// file, and the same text always gives the same answer.
#include "config/config_loader.hpp"
#include "fuzz_check.hpp"

#include <algorithm>

using modeldrop::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = modeldrop::fuzz::as_text(data, size);
  const auto result = modeldrop::config::parse_config(text, "fuzz.yaml", "/nonexistent/fuzz");
  require(result.ok() == result.problems.empty(), "a config exactly when there is no problem");
  for (const auto& problem : result.problems) {
    require(problem.starts_with("fuzz.yaml:"), "every problem names the file");
  }
  if (result.ok()) {
    require(!result.config->watch.empty(), "a valid config watches at least one folder");
    const auto again = modeldrop::config::parse_config(text, "fuzz.yaml", "/nonexistent/fuzz");
    require(again.ok(), "the same text loads the same way twice");
  }
  return 0;
}
