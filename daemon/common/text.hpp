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

// Invalid UTF-8 sequences replaced by U+FFFD, so the text can go into JSON (docs/cli.md).
std::string sanitize_utf8(std::string_view text);

// Text that may hold any byte (a file name, an API's error) as one line of valid UTF-8 for a
// terminal or a log: invalid UTF-8 becomes U+FFFD; newline, carriage return and the other
// control characters become the escapes \n, \r and \xNN, so a name can neither forge a line
// nor send escape codes. A tab is kept (logs) or shown as \t (tables, whose columns it breaks).
enum class Tabs { keep, escape };
std::string one_printable_line(std::string_view text, Tabs tabs);

// An archive name's extension: the longest of .tar.gz .tgz .zip .tar that ends the name
// (case-insensitive), else the last extension, else "". What numbered names go before and
// what a model name's {stem} leaves out.
std::string_view archive_extension(std::string_view name);

}  // namespace modeldrop
