#pragma once

#include "upload/body_feed.hpp"
#include "upload/multipart.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace modeldrop::upload {

// The bytes of one upload request in wire order: HTTP head, multipart preamble, the file
// (from its BodyFeed, read on another thread), epilogue. Filled into the caller's buffer in
// large pieces, so the head and the first file bytes leave in the same write and memory does
// not grow with the file. The epilogue, like the file's final bytes, waits for the feed's verdict.
class UploadRequestBytes {
 public:
  UploadRequestBytes(std::string head, const MultipartFraming& framing, std::unique_ptr<BodyFeed> feed);

  // Appends the next bytes to `out` (as many as are ready and fit); returns how many. 0 means
  // the end, or that nothing is ready yet: then complete() is false and wait() says when.
  FileResult<std::size_t> fill(std::span<std::byte> out);
  [[nodiscard]] bool complete() const { return produced_ == total_size(); }
  // `ready` runs on the feed's consumer thread once fill() has news.
  void wait(std::function<void()> ready) { feed_->wait(std::move(ready)); }
  void cancel_wait() { feed_->cancel_wait(); }

  [[nodiscard]] std::uint64_t total_size() const { return head_.size() + body_size_; }
  [[nodiscard]] std::uint64_t body_size() const { return body_size_; }
  // How many of the first `bytes_written` request bytes were file content.
  [[nodiscard]] std::uint64_t file_bytes_within(std::uint64_t bytes_written) const;

  [[nodiscard]] BodyFeed& feed() { return *feed_; }
  // The content's SHA-256 once every file byte was read (and hashing was asked for).
  [[nodiscard]] std::optional<std::string> sha256() const { return feed_->sha256(); }

 private:
  std::string head_;
  std::string preamble_;
  std::string epilogue_;
  std::unique_ptr<BodyFeed> feed_;
  std::uint64_t file_size_ = 0;
  std::uint64_t body_size_ = 0;
  std::uint64_t produced_ = 0;  // request bytes handed out so far
};

}  // namespace modeldrop::upload
