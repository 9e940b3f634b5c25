#pragma once

// The two byte streams the archive check reads: the file itself, and (for .tar.gz) the bytes
// inflated from it with the gzip CRC and length verified, which libarchive does not do.

#include "common/error.hpp"
#include "preflight/archive_check.hpp"

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace modeldrop::preflight {

// A block of bytes, or the verdict that the stream's content is broken (empty bytes then).
struct Pulled {
  std::span<const std::byte> bytes;
  std::optional<std::string> problem;
};

// The file, read front to back in blocks. The last few blocks stay in memory, so the bytes a
// reader fetched ahead but did not use (the start of a zip's central directory) can be had again.
class RawStream {
 public:
  static constexpr std::size_t block_size = 64 * 1024;
  static constexpr std::size_t retained_blocks = 4;

  explicit RawStream(const ReadNext& read_next) : read_next_(read_next) {}

  // The next block; empty at the end of the file. It stays valid for retained_blocks - 1 more reads.
  Result<std::span<const std::byte>> next_block();

  [[nodiscard]] std::uint64_t bytes_read() const { return bytes_read_; }
  [[nodiscard]] bool at_end() const { return ended_; }

  // The bytes from `offset` to bytes_read(), if they are still retained.
  [[nodiscard]] std::optional<std::vector<std::byte>> retained_from(std::uint64_t offset) const;

 private:
  struct Block {
    std::vector<std::byte> bytes;
    std::uint64_t start = 0;
    std::size_t size = 0;
  };

  const ReadNext& read_next_;
  std::array<Block, retained_blocks> blocks_{};
  std::size_t next_slot_ = 0;
  std::uint64_t bytes_read_ = 0;
  bool ended_ = false;
};

// One or more gzip members inflated by zlib, which checks each member's CRC-32 and length.
// Zero bytes after the last member are accepted (some writers pad); anything else is not.
class GzipStream {
 public:
  explicit GzipStream(RawStream& raw);
  ~GzipStream();
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  // The next inflated block; empty bytes at the end of the stream or with a problem.
  Result<Pulled> next_block();

 private:
  Result<bool> refill_input();
  std::optional<std::string> start_member();
  Result<bool> only_zeros_follow();

  RawStream& raw_;
  z_stream zlib_{};
  bool zlib_ready_ = false;
  bool in_member_ = false;
  bool finished_ = false;
  int members_done_ = 0;
  std::span<const std::byte> input_;
  std::vector<std::byte> output_;
};

}  // namespace modeldrop::preflight
