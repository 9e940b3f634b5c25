// Archives come from anyone who can drop a file: any bytes, as a zip, tar or tar.gz, checked as
// an archive or an adapter, give a verdict (never a crash, a sanitizer report or a hang), the
// same verdict however the reads are cut up, and a problem that is one printable line.
#include "fuzz_check.hpp"
#include "preflight/archive_check.hpp"

#include <algorithm>
#include <cstring>

using modeldrop::fuzz::require;
namespace preflight = modeldrop::preflight;

namespace {

std::optional<std::string> verdict_of(preflight::ArchiveValidation validation, preflight::ArchiveKind kind,
                                      std::string_view bytes, std::size_t chunk) {
  std::size_t position = 0;
  auto verdict =
      preflight::check_archive(validation, kind, [&](std::span<std::byte> into) -> modeldrop::Result<std::size_t> {
        const std::size_t count = std::min({into.size(), chunk, bytes.size() - position});
        std::memcpy(into.data(), bytes.data() + position, count);
        position += count;
        return count;
      });
  require(verdict.has_value(), "only a read failure is an error, and reads here never fail");
  return verdict->problem;
}

bool one_printable_line(const std::string& text) {
  return !text.empty() && std::none_of(text.begin(), text.end(),
                                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}

}  // namespace

// The first byte picks the kind (bits 0-1) and the check (bit 2); the rest is the file.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  constexpr preflight::ArchiveKind kinds[] = {preflight::ArchiveKind::zip, preflight::ArchiveKind::tar,
                                              preflight::ArchiveKind::tar_gz, preflight::ArchiveKind::zip};
  const auto kind = kinds[data[0] & 3];
  const auto validation =
      (data[0] & 4) != 0 ? preflight::ArchiveValidation::adapter : preflight::ArchiveValidation::archive;
  const std::string_view bytes = modeldrop::fuzz::as_text(data + 1, size - 1);
  const auto whole = verdict_of(validation, kind, bytes, 1 << 20);
  require(!whole || one_printable_line(*whole), "a problem is one printable line");
  require(verdict_of(validation, kind, bytes, 1 + data[0] / 8) == whole, "the verdict does not depend on read sizes");
  return 0;
}
