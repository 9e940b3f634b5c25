#pragma once

// What a watch (or `modeldrop add --validate`) asks of its archives. Header-only, so the
// configuration and the CLI can name it without linking the checker.

#include <optional>
#include <string_view>

namespace modeldrop::preflight {

enum class ArchiveValidation { archive, adapter, none };

inline std::string_view to_string(ArchiveValidation validation) {
  switch (validation) {
    case ArchiveValidation::archive:
      return "archive";
    case ArchiveValidation::adapter:
      return "adapter";
    case ArchiveValidation::none:
      return "none";
  }
  return "archive";
}

inline std::optional<ArchiveValidation> parse_archive_validation(std::string_view text) {
  if (text == "archive") return ArchiveValidation::archive;
  if (text == "adapter") return ArchiveValidation::adapter;
  if (text == "none") return ArchiveValidation::none;
  return std::nullopt;
}

}  // namespace modeldrop::preflight
