#include "upload/request_body.hpp"

#include <algorithm>
#include <cstring>

namespace modeldrop::upload {

UploadRequestBytes::UploadRequestBytes(std::string head, const MultipartFraming& framing,
                                       std::unique_ptr<BodyFeed> feed)
    : head_(std::move(head)),
      preamble_(framing.preamble),
      epilogue_(framing.epilogue),
      feed_(std::move(feed)),
      file_size_(feed_->size()),
      body_size_(framing.content_length(file_size_)) {}

FileResult<std::size_t> UploadRequestBytes::fill(std::span<std::byte> out) {
  std::size_t filled = 0;
  // Copies the part of a fixed segment that starts at request offset `segment_start`.
  auto copy_segment = [&](const std::string& segment, std::uint64_t segment_start) {
    if (produced_ < segment_start || produced_ >= segment_start + segment.size()) return;
    const std::size_t from = produced_ - segment_start;
    const std::size_t n = std::min(segment.size() - from, out.size() - filled);
    std::memcpy(out.data() + filled, segment.data() + from, n);
    filled += n;
    produced_ += n;
  };
  const std::uint64_t preamble_start = head_.size();
  const std::uint64_t file_start = preamble_start + preamble_.size();
  const std::uint64_t epilogue_start = file_start + file_size_;

  copy_segment(head_, 0);
  copy_segment(preamble_, preamble_start);
  if (filled < out.size() && produced_ >= file_start && produced_ < epilogue_start) {
    auto taken = feed_->take(out.subspan(filled));
    if (!taken) return taken.error();
    filled += *taken;
    produced_ += *taken;
  }
  // The epilogue completes the body: only after the verdict let the file's last byte go.
  if (produced_ >= epilogue_start) {
    if (feed_->drained()) {
      copy_segment(epilogue_, epilogue_start);
    } else if (auto verdict = feed_->take({}); !verdict) {
      return verdict.error();  // an empty file holds no bytes back: its refusal comes here
    }
  }
  return filled;
}

std::uint64_t UploadRequestBytes::file_bytes_within(std::uint64_t bytes_written) const {
  const std::uint64_t file_start = head_.size() + preamble_.size();
  if (bytes_written <= file_start) return 0;
  return std::min<std::uint64_t>(bytes_written - file_start, file_size_);
}

}  // namespace modeldrop::upload
