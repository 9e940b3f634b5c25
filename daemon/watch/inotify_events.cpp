#include "watch/inotify_events.hpp"

#include <sys/inotify.h>
#include <cstring>

namespace modeldrop::watch {

InotifyParse parse_inotify_events(std::span<const std::byte> buffer, std::vector<InotifyEvent>& out) {
  constexpr std::size_t kHeader = sizeof(struct inotify_event);
  InotifyParse result;
  std::size_t offset = 0;
  while (buffer.size() - offset >= kHeader) {
    // memcpy, not a cast: the buffer carries no alignment guarantee for fuzzed input.
    struct inotify_event header {};
    std::memcpy(&header, buffer.data() + offset, kHeader);
    const std::size_t remaining = buffer.size() - offset - kHeader;
    if (header.len > remaining) {
      result.truncated = true;
      break;
    }
    const char* name = reinterpret_cast<const char*>(buffer.data() + offset + kHeader);
    // The kernel pads the name with NULs up to `len`; a name without one ends at `len`.
    const std::size_t name_length = header.len == 0 ? 0 : ::strnlen(name, header.len);
    out.push_back(InotifyEvent{header.wd, header.mask, header.cookie, std::string_view(name, name_length)});
    offset += kHeader + header.len;
  }
  if (offset < buffer.size()) result.truncated = true;
  result.consumed = offset;
  return result;
}

}  // namespace modeldrop::watch
