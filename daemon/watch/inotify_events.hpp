#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace modeldrop::watch {

// One record of an inotify read buffer. `name` points into the buffer that was parsed.
struct InotifyEvent {
  int wd = 0;
  std::uint32_t mask = 0;
  std::uint32_t cookie = 0;
  std::string_view name;  // empty for events about the watched directory itself
};

struct InotifyParse {
  std::size_t consumed = 0;  // bytes of whole records
  bool truncated = false;    // trailing bytes that do not form a whole record (never from a real read)
};

// Appends every whole record of `buffer` to `out`. Bounds-checked: a length field that points
// past the end stops the parse instead of reading beyond it, so any byte string is safe input.
InotifyParse parse_inotify_events(std::span<const std::byte> buffer, std::vector<InotifyEvent>& out);

}  // namespace modeldrop::watch
