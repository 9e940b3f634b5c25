#include "preflight/archive_check.hpp"

#include "common/text.hpp"
#include "preflight/adapter_layout.hpp"
#include "preflight/byte_streams.hpp"
#include "preflight/zip_directory.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace modeldrop::preflight {

std::string_view to_string(ArchiveValidation validation) {
  switch (validation) {
    case ArchiveValidation::archive:
      return "archive";
    case ArchiveValidation::adapter:
      return "adapter";
    case ArchiveValidation::none:
      return "none";
  }
  return "archive";
}

std::optional<ArchiveValidation> parse_archive_validation(std::string_view text) {
  if (text == "archive") return ArchiveValidation::archive;
  if (text == "adapter") return ArchiveValidation::adapter;
  if (text == "none") return ArchiveValidation::none;
  return std::nullopt;
}

ArchiveKind archive_kind_of(std::string_view file_name) {
  const std::string name = ascii_lower(file_name);
  const auto ends_with = [&](std::string_view suffix) {
    return name.size() > suffix.size() && std::string_view(name).ends_with(suffix);
  };
  if (ends_with(".zip")) return ArchiveKind::zip;
  if (ends_with(".tar.gz") || ends_with(".tgz")) return ArchiveKind::tar_gz;
  if (ends_with(".tar")) return ArchiveKind::tar;
  return ArchiveKind::not_an_archive;
}

namespace {

std::string quoted(std::string_view name) {
  return "\"" + one_printable_line(name, Tabs::escape) + "\"";
}

// What libarchive's read callback pulls from, and why it stopped if it did.
struct Feed {
  std::function<Result<Pulled>()> pull;
  std::optional<Error> error;
  std::optional<std::string> problem;
};

la_ssize_t feed_read(struct archive* reader, void* client, const void** buffer) {
  auto& feed = *static_cast<Feed*>(client);
  try {
    auto pulled = feed.pull();
    if (!pulled) {
      feed.error = pulled.error();
    } else if (pulled->problem) {
      feed.problem = pulled->problem;
    } else {
      *buffer = pulled->bytes.data();
      return static_cast<la_ssize_t>(pulled->bytes.size());
    }
  } catch (const std::exception& exception) {
    feed.error = make_error(std::string("reading the archive: ") + exception.what());
  }
  archive_set_error(reader, EIO, "stopped by the reader");
  return ARCHIVE_FATAL;
}

using ArchiveReader = std::unique_ptr<struct archive, decltype(&archive_read_free)>;

class ArchiveWalk {
 public:
  ArchiveWalk(ArchiveValidation validation, ArchiveKind kind, const ReadNext& read_next, const CheckLimits& limits)
      : validation_(validation),
        kind_(kind),
        limits_(limits),
        raw_(read_next),
        reader_(archive_read_new(), &archive_read_free) {}

  Result<CheckVerdict> run();

 private:
  Result<std::optional<std::string>> open();
  Result<std::optional<std::string>> next_member(bool& ended);
  Result<std::optional<std::string>> read_member(std::string_view name, bool regular_file);
  Result<std::optional<std::string>> container_end();
  Result<std::optional<std::string>> libarchive_problem(std::string_view member);
  std::optional<std::string> zip_cut_short(std::string_view said, std::string_view member) const;
  bool only_a_name_conversion() const;
  std::string container_name() const { return kind_ == ArchiveKind::zip ? "zip archive" : "tar archive"; }

  ArchiveValidation validation_;
  ArchiveKind kind_;
  CheckLimits limits_;
  RawStream raw_;
  std::unique_ptr<GzipStream> gzip_;
  Feed feed_;
  ArchiveReader reader_;
  AdapterLayout adapter_;
  std::vector<ZipMemberSeen> zip_members_;
  std::uint64_t members_ = 0;
  std::uint64_t name_bytes_ = 0;
  std::uint64_t expanded_ = 0;
  std::uint64_t end_of_last_member_ = 0;
};

Result<std::optional<std::string>> ArchiveWalk::open() {
  if (kind_ == ArchiveKind::zip) {
    archive_read_support_format_zip_streamable(reader_.get());
  } else {
    archive_read_support_format_tar(reader_.get());
  }
  if (kind_ == ArchiveKind::tar_gz) {
    gzip_ = std::make_unique<GzipStream>(raw_);
    feed_.pull = [this] { return gzip_->next_block(); };
  } else {
    feed_.pull = [this]() -> Result<Pulled> {
      auto block = raw_.next_block();
      if (!block) return block.error();
      return Pulled{*block, std::nullopt};
    };
  }
  if (archive_read_open(reader_.get(), &feed_, nullptr, feed_read, nullptr) != ARCHIVE_OK) {
    return libarchive_problem({});
  }
  return std::optional<std::string>{};
}

Result<std::optional<std::string>> ArchiveWalk::next_member(bool& ended) {
  struct archive_entry* entry = nullptr;
  const int status = archive_read_next_header(reader_.get(), &entry);
  if (status == ARCHIVE_EOF) {
    ended = true;
    return std::optional<std::string>{};
  }
  if (status != ARCHIVE_OK && !(status == ARCHIVE_WARN && only_a_name_conversion())) return libarchive_problem({});
  if (++members_ > limits_.max_members) {
    return std::optional<std::string>{"more than " + std::to_string(limits_.max_members) + " members"};
  }
  const char* path = archive_entry_pathname(entry);
  const std::string_view name = path != nullptr ? path : "";
  name_bytes_ += name.size();
  if (name_bytes_ > limits_.max_name_bytes) return std::optional<std::string>{"member names too long in total"};
  return read_member(name, archive_entry_filetype(entry) == AE_IFREG);
}

// Every byte of the member's data is read: that is what makes libarchive check a zip's CRC-32.
Result<std::optional<std::string>> ArchiveWalk::read_member(std::string_view name, bool regular_file) {
  const bool wanted = validation_ == ArchiveValidation::adapter && adapter_.begin_member(name, regular_file);
  std::uint64_t size = 0;
  for (;;) {
    const void* data = nullptr;
    std::size_t length = 0;
    la_int64_t offset = 0;
    const int status = archive_read_data_block(reader_.get(), &data, &length, &offset);
    if (status == ARCHIVE_EOF) break;
    if (status != ARCHIVE_OK) return libarchive_problem(name);  // a bad CRC is only a warning
    size = std::max(size, static_cast<std::uint64_t>(offset) + length);
    expanded_ += length;
    if (expanded_ > limits_.expansion_allowance && expanded_ / limits_.max_expansion > raw_.bytes_read()) {
      return std::optional<std::string>{"archive expands more than " + std::to_string(limits_.max_expansion) +
                                        "-fold (at member " + quoted(name) + ")"};
    }
    if (wanted) adapter_.member_data(std::span(static_cast<const std::byte*>(data), length));
  }
  if (wanted) adapter_.end_member();
  if (kind_ == ArchiveKind::zip) zip_members_.push_back({std::string(name), size, regular_file});
  end_of_last_member_ = static_cast<std::uint64_t>(archive_filter_bytes(reader_.get(), 0));
  return std::optional<std::string>{};
}

// A tar ends with a block of zeros (libarchive also accepts a tar without it); a gzip stream
// is read to its end so that its CRC and length are checked; a zip ends with its directory.
Result<std::optional<std::string>> ArchiveWalk::container_end() {
  const auto position = static_cast<std::uint64_t>(archive_filter_bytes(reader_.get(), 0));
  if (kind_ == ArchiveKind::zip) return check_zip_central_directory(raw_, position, zip_members_);
  const std::uint64_t padded_end = (end_of_last_member_ + 511) / 512 * 512;
  if (position < padded_end + 512) return std::optional<std::string>{"tar end-of-archive marker missing"};
  while (gzip_) {
    auto pulled = gzip_->next_block();
    if (!pulled) return pulled.error();
    if (pulled->problem) return pulled->problem;
    if (pulled->bytes.empty()) break;
  }
  return std::optional<std::string>{};
}

// libarchive's words for what it found, turned into the check's own where they are known.
Result<std::optional<std::string>> ArchiveWalk::libarchive_problem(std::string_view member) {
  if (feed_.error) return *feed_.error;
  if (feed_.problem) return feed_.problem;
  if (raw_.bytes_read() == 0) return std::optional<std::string>{"empty file"};
  const char* text = archive_error_string(reader_.get());
  const std::string_view said = text != nullptr ? text : "";
  const auto problem = [](std::string value) { return std::optional<std::string>{std::move(value)}; };
  if (said.starts_with("ZIP bad CRC")) return problem("CRC mismatch in member " + quoted(member));
  if (said.starts_with("Damaged tar archive")) return problem("damaged tar header");
  if (said.starts_with("Unrecognized archive format")) {
    if (kind_ != ArchiveKind::zip && raw_.at_end() && raw_.bytes_read() < 512) return problem("truncated tar archive");
    return problem("not a " + container_name());
  }
  // Whatever else went wrong once the whole file was read is the file ending too soon.
  if (raw_.at_end() || said.starts_with("Truncated")) {
    if (kind_ == ArchiveKind::zip) return zip_cut_short(said, member);
    return problem("truncated " + container_name());
  }
  const std::string what = said.empty() ? std::string("unreadable") : one_printable_line(said, Tabs::escape);
  if (member.empty()) return problem(container_name() + ": " + what);
  return problem("member " + quoted(member) + ": " + what);
}

// A name libarchive could not convert to the locale's character set is still read as bytes.
bool ArchiveWalk::only_a_name_conversion() const {
  const char* text = archive_error_string(reader_.get());
  return text != nullptr && std::string_view(text).find("convert") != std::string_view::npos;
}

// Read as a stream, a zip member whose size comes after its data (a data descriptor) ends
// where a descriptor with the right CRC and size is found: a damaged member is then read to
// the end of the file. Its end record still being there tells that from a file cut short.
std::optional<std::string> ArchiveWalk::zip_cut_short(std::string_view said, std::string_view member) const {
  // libarchive reads a little past a descriptor; a file ending right after it lacks its directory.
  if (said.starts_with("Truncated ZIP end-of-file record")) return "zip central directory missing";
  constexpr std::uint64_t end_record_reach = 22 + 65'535;  // the record and its longest comment
  const std::uint64_t read = raw_.bytes_read();
  const auto tail = raw_.retained_from(read - std::min(read, end_record_reach));
  const std::string_view signature("PK\x05\x06", 4);
  if (!member.empty() && tail &&
      std::string_view(reinterpret_cast<const char*>(tail->data()), tail->size()).find(signature) !=
          std::string_view::npos) {
    return "damaged data in member " + quoted(member);
  }
  return "truncated zip archive";
}

Result<CheckVerdict> ArchiveWalk::run() {
  const auto verdict_of = [](const Result<std::optional<std::string>>& step) -> Result<CheckVerdict> {
    if (!step) return step.error();
    return CheckVerdict{*step};
  };
  auto step = open();
  if (!step || *step) return verdict_of(step);
  for (bool ended = false; !ended;) {
    step = next_member(ended);
    if (!step || *step) return verdict_of(step);
  }
  step = container_end();
  if (!step || *step) return verdict_of(step);
  if (validation_ == ArchiveValidation::adapter) return CheckVerdict{adapter_.verdict()};
  return CheckVerdict{};
}

}  // namespace

Result<CheckVerdict> check_archive(ArchiveValidation validation, ArchiveKind kind, const ReadNext& read_next,
                                   const CheckLimits& limits) {
  if (validation == ArchiveValidation::none) return CheckVerdict{};
  if (kind == ArchiveKind::not_an_archive) {
    if (validation == ArchiveValidation::archive) return CheckVerdict{};
    return CheckVerdict{"not a .zip, .tar, .tar.gz or .tgz file"};
  }
  return ArchiveWalk(validation, kind, read_next, limits).run();
}

}  // namespace modeldrop::preflight
