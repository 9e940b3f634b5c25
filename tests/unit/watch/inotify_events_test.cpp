#include "watch/inotify_events.hpp"

#include <gtest/gtest.h>

#include <sys/inotify.h>
#include <cstring>
#include <random>
#include <string>

namespace modeldrop::watch {
namespace {

// Appends one record as the kernel lays it out: header, name, NUL padding up to `padded`.
void append_record(std::vector<std::byte>& buffer, int wd, std::uint32_t mask, std::string_view name,
                   std::size_t padded) {
  struct inotify_event header {};
  header.wd = wd;
  header.mask = mask;
  header.cookie = 7;
  header.len = static_cast<std::uint32_t>(padded);
  const auto* bytes = reinterpret_cast<const std::byte*>(&header);
  buffer.insert(buffer.end(), bytes, bytes + sizeof(header));
  const auto* name_bytes = reinterpret_cast<const std::byte*>(name.data());
  buffer.insert(buffer.end(), name_bytes, name_bytes + std::min(name.size(), padded));
  buffer.resize(buffer.size() + (padded - std::min(name.size(), padded)), std::byte{0});
}

TEST(InotifyEvents, ParsesConsecutiveRecordsWithPaddedNames) {
  std::vector<std::byte> buffer;
  append_record(buffer, 1, IN_CLOSE_WRITE, "model.zip", 16);
  append_record(buffer, 2, IN_DELETE_SELF, "", 0);
  append_record(buffer, 1, IN_MOVED_TO | IN_ISDIR, "sub", 32);
  std::vector<InotifyEvent> events;
  const auto parse = parse_inotify_events(buffer, events);
  EXPECT_FALSE(parse.truncated);
  EXPECT_EQ(parse.consumed, buffer.size());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].wd, 1);
  EXPECT_EQ(events[0].mask, static_cast<std::uint32_t>(IN_CLOSE_WRITE));
  EXPECT_EQ(events[0].cookie, 7u);
  EXPECT_EQ(events[0].name, "model.zip");
  EXPECT_EQ(events[1].wd, 2);
  EXPECT_TRUE(events[1].name.empty());
  EXPECT_EQ(events[2].name, "sub");
  EXPECT_NE(events[2].mask & IN_ISDIR, 0u);
}

TEST(InotifyEvents, NameWithoutTerminatorEndsAtItsLength) {
  std::vector<std::byte> buffer;
  append_record(buffer, 3, IN_CREATE, "abcdefgh", 8);  // exactly len bytes, no NUL
  std::vector<InotifyEvent> events;
  parse_inotify_events(buffer, events);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].name, "abcdefgh");
}

TEST(InotifyEvents, StopsAtALengthPointingPastTheEnd) {
  std::vector<std::byte> buffer;
  append_record(buffer, 1, IN_MODIFY, "a.zip", 16);
  const std::size_t whole = buffer.size();
  append_record(buffer, 1, IN_MODIFY, "b.zip", 16);
  buffer.resize(buffer.size() - 4);  // the second record's name is cut short
  std::vector<InotifyEvent> events;
  const auto parse = parse_inotify_events(buffer, events);
  EXPECT_TRUE(parse.truncated);
  EXPECT_EQ(parse.consumed, whole);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].name, "a.zip");
}

TEST(InotifyEvents, TruncatedHeaderAndEmptyBuffer) {
  std::vector<InotifyEvent> events;
  EXPECT_FALSE(parse_inotify_events({}, events).truncated);
  std::vector<std::byte> partial(sizeof(struct inotify_event) - 1, std::byte{1});
  const auto parse = parse_inotify_events(partial, events);
  EXPECT_TRUE(parse.truncated);
  EXPECT_EQ(parse.consumed, 0u);
  EXPECT_TRUE(events.empty());
}

TEST(InotifyEvents, HugeLengthFieldIsNotTrusted) {
  std::vector<std::byte> buffer;
  append_record(buffer, 1, IN_MODIFY, "", 0);
  struct inotify_event header {};
  std::memcpy(&header, buffer.data(), sizeof(header));
  header.len = 0xFFFFFFF0u;
  std::memcpy(buffer.data(), &header, sizeof(header));
  std::vector<InotifyEvent> events;
  const auto parse = parse_inotify_events(buffer, events);
  EXPECT_TRUE(parse.truncated);
  EXPECT_TRUE(events.empty());
}

TEST(InotifyEvents, RandomBytesNeverReadOutOfBounds) {
  // Under ASan this is a small fuzz run; the parse must stay within every buffer.
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 200);
  for (int round = 0; round < 5000; ++round) {
    std::vector<std::byte> buffer(length(rng));
    for (auto& b : buffer) b = static_cast<std::byte>(byte(rng));
    std::vector<InotifyEvent> events;
    const auto parse = parse_inotify_events(buffer, events);
    ASSERT_LE(parse.consumed, buffer.size());
    for (const auto& event : events) {
      ASSERT_GE(event.name.data(), reinterpret_cast<const char*>(buffer.data()));
      ASSERT_LE(event.name.data() + event.name.size(), reinterpret_cast<const char*>(buffer.data() + buffer.size()));
    }
  }
}

}  // namespace
}  // namespace modeldrop::watch
