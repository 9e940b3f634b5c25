#pragma once

// A zip read as a stream yields its members from their local headers; the central directory at
// the end is what most readers (the server's among them) trust. This checks that it is there,
// whole, and lists the same members in the same order with the same sizes.

#include "common/error.hpp"
#include "preflight/byte_streams.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::preflight {

// What the stream of local headers showed, one entry per member.
struct ZipMemberSeen {
  std::string name;
  std::uint64_t size = 0;
  bool regular_file = true;
};

// Reads the rest of the file from `central_directory_start` (where the stream of members
// ended) and returns the problem found, if any. `seen` is in the order the members were read.
Result<std::optional<std::string>> check_zip_central_directory(RawStream& raw, std::uint64_t central_directory_start,
                                                               const std::vector<ZipMemberSeen>& seen);

}  // namespace modeldrop::preflight
