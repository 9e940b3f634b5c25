#pragma once

// Archive checks: a broken or truncated archive must fail before the server can store it.
// The check consumes the file as one front-to-back stream of bytes, so the preflight stage can
// read each archive once for both the check and its SHA-256.

#include "common/error.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace modeldrop::preflight {

// What a watch (or `modeldrop add --validate`) asks of its archives.
enum class ArchiveValidation { archive, adapter, none };

std::string_view to_string(ArchiveValidation validation);
std::optional<ArchiveValidation> parse_archive_validation(std::string_view text);

// The container, from the file name's extension (case-insensitive): .zip, .tar, .tar.gz/.tgz.
enum class ArchiveKind { zip, tar, tar_gz, not_an_archive };

ArchiveKind archive_kind_of(std::string_view file_name);

// Fills `into` with the next bytes of the file and returns how many (0 at the end of the file).
// Called only from the thread that runs check_archive.
using ReadNext = std::function<Result<std::size_t>(std::span<std::byte> into)>;

struct CheckVerdict {
  // Empty when the archive passed; otherwise what is wrong, e.g. "truncated gzip stream"
  // (the job's last_error is "archive check: " followed by this).
  std::optional<std::string> problem;

  [[nodiscard]] bool passed() const { return !problem.has_value(); }
};

// What a hostile archive may cost before it fails (the defaults; tests pass smaller ones).
struct CheckLimits {
  // A model archive holds a config, a tokenizer and at most a few hundred weight shards: ten
  // thousand members is far above that, and far below where per-member work adds up.
  std::uint64_t max_members = 10'000;
  // Member names are kept to compare a zip's central directory with them.
  std::uint64_t max_name_bytes = 4 * 1024 * 1024;
  // Weights compress little (about 1.1x) and text rarely beyond 10x: inflating to more than
  // 100 times the bytes read, past a first GiB (small archives of zeros), is a bomb.
  std::uint64_t max_expansion = 100;
  std::uint64_t expansion_allowance = std::uint64_t{1} << 30;
};

// Checks the archive whose bytes `read_next` yields, front to back, each byte at most once.
// It may stop reading before the end (a verdict reached early); the caller reads what is left
// for its hash. An error is a failure to read the file, not a verdict on its content.
Result<CheckVerdict> check_archive(ArchiveValidation validation, ArchiveKind kind, const ReadNext& read_next,
                                   const CheckLimits& limits = {});

}  // namespace modeldrop::preflight
