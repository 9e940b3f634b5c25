#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::watch {

// docs/configuration.md: names starting with "." and names ending in .part, .partial, .tmp, .crdownload,
// .swp or "~" are files still being written; writers rename them when complete.
bool is_ignored_name(std::string_view name);

// A watch entry's `patterns`: shell globs on the file name, case-insensitive.
class NameFilter {
 public:
  explicit NameFilter(std::vector<std::string> patterns);

  [[nodiscard]] bool matches_pattern(std::string_view name) const;
  // True for a name the watch entry queues: not ignored, and matching a pattern.
  [[nodiscard]] bool accepts(std::string_view name) const;
  [[nodiscard]] const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  std::vector<std::string> patterns_;
};

}  // namespace modeldrop::watch
