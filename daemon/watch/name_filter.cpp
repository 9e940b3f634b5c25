#include "watch/name_filter.hpp"

#include "common/text.hpp"

#include <fnmatch.h>
#include <array>

namespace modeldrop::watch {

bool is_ignored_name(std::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '~') return true;
  // Case-insensitive: leaving a partial "MODEL.ZIP.PART" alone is the safe side.
  const std::string lower = ascii_lower(name);
  constexpr std::array<std::string_view, 5> kPartialSuffixes{".part", ".partial", ".tmp", ".crdownload", ".swp"};
  for (const auto suffix : kPartialSuffixes) {
    if (std::string_view(lower).ends_with(suffix)) return true;
  }
  return false;
}

NameFilter::NameFilter(std::vector<std::string> patterns) : patterns_(std::move(patterns)) {}

bool NameFilter::matches_pattern(std::string_view name) const {
  const std::string terminated(name);  // fnmatch wants a C string
  for (const auto& pattern : patterns_) {
    if (::fnmatch(pattern.c_str(), terminated.c_str(), FNM_CASEFOLD) == 0) return true;
  }
  return false;
}

bool NameFilter::accepts(std::string_view name) const {
  return !is_ignored_name(name) && matches_pattern(name);
}

}  // namespace modeldrop::watch
