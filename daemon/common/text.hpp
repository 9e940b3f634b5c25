#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace modeldrop {

std::string_view trim(std::string_view text);
std::string ascii_lower(std::string_view text);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is a plausible typo of it.
std::optional<std::string> closest_match(std::string_view word, std::span<const std::string_view> candidates);

// Invalid UTF-8 sequences replaced by U+FFFD, so the text can go into JSON (CONTRACT §2).
std::string sanitize_utf8(std::string_view text);

}  // namespace modeldrop
