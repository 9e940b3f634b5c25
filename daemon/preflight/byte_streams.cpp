#include "preflight/byte_streams.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace modeldrop::preflight {

// Blocks are filled whole whatever size the reads come in, so what is retained does not
// depend on the caller's reads.
Result<std::span<const std::byte>> RawStream::next_block() {
  if (ended_) return std::span<const std::byte>{};
  Block& block = blocks_[next_slot_];
  block.bytes.resize(block_size);
  std::size_t filled = 0;
  while (!ended_ && filled < block_size) {
    auto got = read_next_(std::span(block.bytes).subspan(filled));
    if (!got) return got.error();
    if (*got == 0) ended_ = true;
    filled += std::min(*got, block_size - filled);
  }
  // An empty read leaves the slot's older block retained.
  if (filled == 0) return std::span<const std::byte>{};
  block.start = bytes_read_;
  block.size = filled;
  bytes_read_ += filled;
  next_slot_ = (next_slot_ + 1) % retained_blocks;
  return std::span<const std::byte>(block.bytes.data(), block.size);
}

std::optional<std::vector<std::byte>> RawStream::retained_from(std::uint64_t offset) const {
  if (offset > bytes_read_) return std::nullopt;
  std::vector<std::byte> bytes;
  std::uint64_t position = offset;
  // Oldest block first: the slot to be written next holds the oldest.
  for (std::size_t i = 0; i < retained_blocks && position < bytes_read_; ++i) {
    const Block& block = blocks_[(next_slot_ + i) % retained_blocks];
    const std::uint64_t end = block.start + block.size;
    if (block.size == 0 || end <= position) continue;
    if (block.start > position) return std::nullopt;
    const auto skip = position - block.start;
    bytes.insert(bytes.end(), block.bytes.begin() + static_cast<std::ptrdiff_t>(skip),
                 block.bytes.begin() + static_cast<std::ptrdiff_t>(block.size));
    position = end;
  }
  if (position != bytes_read_) return std::nullopt;
  return bytes;
}

GzipStream::GzipStream(RawStream& raw) : raw_(raw), output_(RawStream::block_size) {}

GzipStream::~GzipStream() {
  if (zlib_ready_) inflateEnd(&zlib_);
}

Result<bool> GzipStream::refill_input() {
  auto block = raw_.next_block();
  if (!block) return block.error();
  input_ = *block;
  return !input_.empty();
}

// 15 window bits + 16: a gzip wrapper, whose trailer zlib checks against the inflated bytes.
std::optional<std::string> GzipStream::start_member() {
  const int status = zlib_ready_ ? inflateReset(&zlib_) : inflateInit2(&zlib_, 15 + 16);
  if (status != Z_OK) return "cannot start the gzip decoder";
  zlib_ready_ = true;
  in_member_ = true;
  return std::nullopt;
}

Result<bool> GzipStream::only_zeros_follow() {
  for (;;) {
    if (std::any_of(input_.begin(), input_.end(), [](std::byte b) { return b != std::byte{0}; })) return false;
    auto more = refill_input();
    if (!more) return more.error();
    if (!*more) return true;
  }
}

namespace {

std::string describe_zlib_failure(const z_stream& zlib, bool first_member) {
  const std::string_view message = zlib.msg != nullptr ? zlib.msg : "";
  if (message == "incorrect data check") return "gzip CRC mismatch";
  if (message == "incorrect length check") return "gzip length mismatch";
  if (message == "incorrect header check" || message == "unknown compression method") {
    return first_member ? "not a gzip stream" : "unexpected data after gzip stream";
  }
  return "corrupt gzip data";
}

}  // namespace

Result<Pulled> GzipStream::next_block() {
  while (!finished_) {
    if (input_.empty()) {
      auto more = refill_input();
      if (!more) return more.error();
      if (!*more) {
        finished_ = true;
        if (raw_.bytes_read() == 0) return Pulled{{}, "empty file"};
        if (in_member_ || members_done_ == 0) return Pulled{{}, "truncated gzip stream"};
        break;
      }
    }
    if (!in_member_) {
      if (members_done_ > 0 && input_.front() == std::byte{0}) {
        auto zeros = only_zeros_follow();
        if (!zeros) return zeros.error();
        finished_ = true;
        if (!*zeros) return Pulled{{}, "unexpected data after gzip stream"};
        break;
      }
      if (auto problem = start_member()) return Pulled{{}, problem};
    }
    // zlib's interface takes non-const input; it does not write to it.
    zlib_.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(input_.data()));
    zlib_.avail_in = static_cast<uInt>(input_.size());
    zlib_.next_out = reinterpret_cast<Bytef*>(output_.data());
    zlib_.avail_out = static_cast<uInt>(output_.size());
    const int status = inflate(&zlib_, Z_NO_FLUSH);
    input_ = input_.subspan(input_.size() - zlib_.avail_in);
    const std::size_t produced = output_.size() - zlib_.avail_out;
    if (status == Z_STREAM_END) {
      in_member_ = false;
      ++members_done_;
    } else if (status == Z_MEM_ERROR) {
      return make_error("out of memory inflating gzip data");
    } else if (status != Z_OK && status != Z_BUF_ERROR) {
      finished_ = true;
      return Pulled{{}, describe_zlib_failure(zlib_, members_done_ == 0)};
    }
    if (produced > 0) return Pulled{std::span<const std::byte>(output_.data(), produced), std::nullopt};
  }
  return Pulled{};
}

}  // namespace modeldrop::preflight
