// The inotify read buffer parser on any bytes: whole records only, every name inside the
// buffer and without its NUL padding, and the records account for exactly the bytes consumed.
#include "fuzz_check.hpp"
#include "watch/inotify_events.hpp"

#include <sys/inotify.h>
#include <cstring>

using modeldrop::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> buffer(reinterpret_cast<const std::byte*>(data), size);
  std::vector<modeldrop::watch::InotifyEvent> events;
  const auto parse = modeldrop::watch::parse_inotify_events(buffer, events);

  require(parse.consumed <= size, "consumed no more than the buffer");
  require(parse.truncated == (parse.consumed < size), "truncated exactly when bytes are left over");
  const char* const begin = reinterpret_cast<const char*>(data);
  std::size_t offset = 0;
  for (const auto& event : events) {
    struct inotify_event header {};
    require(size - offset >= sizeof header, "each record has a whole header");
    std::memcpy(&header, data + offset, sizeof header);
    require(event.wd == header.wd && event.mask == header.mask && event.cookie == header.cookie,
            "the header fields are the record's");
    const char* const name_start = begin + offset + sizeof header;
    require(event.name.empty() || event.name.data() == name_start, "the name starts after the header");
    require(event.name.size() <= header.len, "the name stays within its record");
    require(event.name.find('\0') == std::string_view::npos, "the name has no NUL");
    offset += sizeof header + header.len;
  }
  require(offset == parse.consumed, "the records account for the bytes consumed");

  // Reading the rest again must not find records that were not there: a real read never
  // splits a record, so leftover bytes are never the start of a whole one.
  if (parse.truncated) {
    std::vector<modeldrop::watch::InotifyEvent> rest;
    const auto again = modeldrop::watch::parse_inotify_events(buffer.subspan(parse.consumed), rest);
    require(rest.empty() && again.consumed == 0, "leftover bytes hold no whole record");
  }
  return 0;
}
