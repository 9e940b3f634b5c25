#include "preflight/zip_directory.hpp"

#include "common/text.hpp"

#include <cstring>
#include <string_view>

namespace modeldrop::preflight {

namespace {

std::uint64_t little_endian(const std::vector<std::byte>& bytes, std::size_t at, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i) value |= std::to_integer<std::uint64_t>(bytes[at + i]) << (8 * i);
  return value;
}

std::string quoted(std::string_view name) {
  return "\"" + one_printable_line(name, Tabs::escape) + "\"";
}

// The rest of the file after the members: first the bytes already fetched, then fresh blocks.
class TailReader {
 public:
  TailReader(RawStream& raw, std::vector<std::byte> retained) : raw_(raw), pending_(std::move(retained)) {}

  // Exactly `count` bytes into `out`; false when the file ends first.
  Result<bool> read(std::size_t count, std::vector<std::byte>& out) {
    out.clear();
    while (out.size() < count) {
      if (used_ == pending_.size()) {
        auto block = raw_.next_block();
        if (!block) return block.error();
        if (block->empty()) return false;
        pending_.assign(block->begin(), block->end());
        used_ = 0;
      }
      const std::size_t take = std::min(count - out.size(), pending_.size() - used_);
      out.insert(out.end(), pending_.begin() + static_cast<std::ptrdiff_t>(used_),
                 pending_.begin() + static_cast<std::ptrdiff_t>(used_ + take));
      used_ += take;
    }
    return true;
  }

 private:
  RawStream& raw_;
  std::vector<std::byte> pending_;
  std::size_t used_ = 0;
};

// The uncompressed size, from the zip64 extra field when the 32-bit one is saturated.
std::optional<std::uint64_t> uncompressed_size(std::uint64_t size32, const std::vector<std::byte>& extra) {
  if (size32 != 0xFFFFFFFF) return size32;
  for (std::size_t at = 0; at + 4 <= extra.size();) {
    const auto id = little_endian(extra, at, 2);
    const auto length = little_endian(extra, at + 2, 2);
    if (id == 0x0001 && length >= 8 && at + 12 <= extra.size()) return little_endian(extra, at + 4, 8);
    at += 4 + length;
  }
  return std::nullopt;
}

enum class Record { member, zip64_end, zip64_locator, end, other };

Record record_of(const std::vector<std::byte>& signature) {
  const auto value = little_endian(signature, 0, 4);
  if (value == 0x02014b50) return Record::member;
  if (value == 0x06064b50) return Record::zip64_end;
  if (value == 0x07064b50) return Record::zip64_locator;
  if (value == 0x06054b50) return Record::end;
  return Record::other;
}

class DirectoryCheck {
 public:
  DirectoryCheck(TailReader& tail, std::uint64_t start, const std::vector<ZipMemberSeen>& seen)
      : tail_(tail), start_(start), seen_(seen) {}

  Result<std::optional<std::string>> run() {
    std::vector<std::byte> signature;
    for (;;) {
      auto got = tail_.read(4, signature);
      if (!got) return got.error();
      if (!*got) return problem(listed_ == 0 ? "zip central directory missing" : "truncated zip central directory");
      Result<std::optional<std::string>> step = std::optional<std::string>{};
      switch (record_of(signature)) {
        case Record::member:
          step = member();
          break;
        case Record::zip64_end:
          step = skip_zip64_end();
          break;
        case Record::zip64_locator:
          step = skip(16);
          break;
        case Record::end:
          return end();
        case Record::other:
          return problem(listed_ == 0 ? "zip central directory missing" : "corrupt zip central directory");
      }
      if (!step || *step) return step;
    }
  }

 private:
  static Result<std::optional<std::string>> problem(std::string text) {
    return std::optional<std::string>{std::move(text)};
  }

  Result<std::optional<std::string>> truncated_or(const Result<bool>& got) {
    if (!got) return got.error();
    return problem("truncated zip central directory");
  }

  Result<std::optional<std::string>> skip(std::size_t count) {
    std::vector<std::byte> ignored;
    auto got = tail_.read(count, ignored);
    if (!got || !*got) return truncated_or(got);
    return std::optional<std::string>{};
  }

  Result<std::optional<std::string>> skip_zip64_end() {
    std::vector<std::byte> size;
    auto got = tail_.read(8, size);
    if (!got || !*got) return truncated_or(got);
    const auto length = little_endian(size, 0, 8);
    if (length > 1024 * 1024) return problem("corrupt zip central directory");
    return skip(length);
  }

  Result<std::optional<std::string>> member() {
    std::vector<std::byte> fixed;
    std::vector<std::byte> name;
    std::vector<std::byte> extra;
    auto got = tail_.read(42, fixed);
    if (got && *got) got = tail_.read(little_endian(fixed, 24, 2), name);
    if (got && *got) got = tail_.read(little_endian(fixed, 26, 2), extra);
    if (got && *got) got = skip_bytes(little_endian(fixed, 28, 2));
    if (!got || !*got) return truncated_or(got);
    const std::string_view listed_name(reinterpret_cast<const char*>(name.data()), name.size());
    if (listed_ >= seen_.size())
      return problem("zip central directory lists a member not in the archive: " + quoted(listed_name));
    const ZipMemberSeen& read = seen_[listed_++];
    if (listed_name != read.name) return problem("zip central directory does not match member " + quoted(read.name));
    if (read.regular_file && uncompressed_size(little_endian(fixed, 20, 4), extra) != read.size) {
      return problem("zip central directory gives another size for member " + quoted(read.name));
    }
    return std::optional<std::string>{};
  }

  Result<bool> skip_bytes(std::size_t count) {
    std::vector<std::byte> ignored;
    return tail_.read(count, ignored);
  }

  Result<std::optional<std::string>> end() {
    std::vector<std::byte> fixed;
    auto got = tail_.read(18, fixed);
    if (got && *got) got = skip_bytes(little_endian(fixed, 16, 2));
    if (!got || !*got) return truncated_or(got);
    if (listed_ < seen_.size()) return problem("zip central directory lacks member " + quoted(seen_[listed_].name));
    const auto count = little_endian(fixed, 6, 2);
    if (count != 0xFFFF && count != (listed_ & 0xFFFF))
      return problem("zip end of central directory miscounts the members");
    const auto offset = little_endian(fixed, 12, 4);
    if (offset != 0xFFFFFFFF && offset != start_)
      return problem("zip central directory is not where the end record says");
    std::vector<std::byte> after;
    auto more = tail_.read(1, after);
    if (!more) return more.error();
    if (*more) return problem("unexpected data after the zip's end of central directory");
    return std::optional<std::string>{};
  }

  TailReader& tail_;
  std::uint64_t start_;
  const std::vector<ZipMemberSeen>& seen_;
  std::size_t listed_ = 0;
};

}  // namespace

Result<std::optional<std::string>> check_zip_central_directory(RawStream& raw, std::uint64_t central_directory_start,
                                                               const std::vector<ZipMemberSeen>& seen) {
  auto retained = raw.retained_from(central_directory_start);
  if (!retained) return std::optional<std::string>{"zip central directory unreadable (too far behind the members)"};
  TailReader tail(raw, std::move(*retained));
  return DirectoryCheck(tail, central_directory_start, seen).run();
}

}  // namespace modeldrop::preflight
