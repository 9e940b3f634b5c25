#pragma once

// Real archives for the archive checks, made at test time with libarchive: good ones of each
// kind, and copies broken the ways files break (cut short, flipped bytes, a zip without its
// central directory, a gzip with a bad CRC, too many members), each with the problem the check
// must report. The adapter cases lay out adapter files right and wrong.

#include <optional>
#include <string>
#include <vector>

namespace modeldrop::test {

struct ArchiveMember {
  std::string name;  // ending in "/" for a directory
  std::string content;
};

enum class ArchiveFormat { zip_deflated, zip_stored, tar, tar_gz };

// The archive's bytes.
std::string make_archive(ArchiveFormat format, const std::vector<ArchiveMember>& members);

struct ArchiveCase {
  std::string file_name;  // with the extension that gives the kind, e.g. "cut-in-data.tar.gz"
  std::string bytes;
  std::string validate;                // "archive" or "adapter", as in the configuration
  std::optional<std::string> problem;  // what the check reports; empty when it passes
};

// Broken archives (validate: archive), each with its problem.
std::vector<ArchiveCase> broken_archive_cases();
// One good archive of each kind, and a file with no archive extension (sent unchecked).
std::vector<ArchiveCase> good_archive_cases();
// Adapter layouts (validate: adapter), good and bad.
std::vector<ArchiveCase> adapter_cases();

// A valid safetensors file holding `tensors` float32 tensors of `values` values each.
std::string make_safetensors(int tensors, int values);

}  // namespace modeldrop::test
