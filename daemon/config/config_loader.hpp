#pragma once

#include "config/config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::config {

// Either a Config or every problem found, each "<file>:<line>: <key.path>: <message>".
struct LoadResult {
  std::optional<Config> config;
  std::vector<std::string> problems;

  [[nodiscard]] bool ok() const { return config.has_value(); }
};

// Reads and validates the file. `file` is shown in messages as given; relative paths in the
// config resolve against the file's directory. A file that cannot be read is one problem.
LoadResult load_config(const std::filesystem::path& file);

// The same on text already in memory (tests, fuzzing).
LoadResult parse_config(std::string_view yaml, const std::string& display_name, const std::filesystem::path& base_dir);

}  // namespace modeldrop::config
