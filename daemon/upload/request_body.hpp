#pragma once

#include "upload/multipart.hpp"
#include "upload/source_file.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace modeldrop::upload {

// The bytes of one upload request in wire order: HTTP head, multipart preamble, the file
// from its one descriptor, epilogue. Filled into the caller's buffer in large pieces, so the
// head and the first file bytes leave in the same write and memory does not grow with the file.
class UploadRequestBytes {
 public:
  UploadRequestBytes(std::string head, const MultipartFraming& framing, SourceFile file, bool compute_sha256);

  // Appends the next bytes to `out` (as many as fit); returns how many. 0 means the end.
  FileResult<std::size_t> fill(std::span<std::byte> out);

  [[nodiscard]] std::uint64_t total_size() const { return head_.size() + body_size_; }
  [[nodiscard]] std::uint64_t body_size() const { return body_size_; }
  // How many of the first `bytes_written` request bytes were file content.
  [[nodiscard]] std::uint64_t file_bytes_within(std::uint64_t bytes_written) const;

  [[nodiscard]] SourceFile& file() { return file_; }
  // The content's SHA-256 once every file byte has been filled in (and hashing was asked for).
  std::optional<std::string> sha256();

 private:
  std::string head_;
  std::string preamble_;
  std::string epilogue_;
  SourceFile file_;
  std::optional<Sha256> hash_;
  std::optional<std::string> digest_;
  std::uint64_t body_size_ = 0;
  std::uint64_t produced_ = 0;  // request bytes handed out so far
};

}  // namespace modeldrop::upload
