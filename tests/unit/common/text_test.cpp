#include "common/text.hpp"

#include <gtest/gtest.h>
#include <array>

namespace modeldrop {
namespace {

TEST(Trim, RemovesSurroundingWhitespaceOnly) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  EXPECT_EQ(trim("\t\r\n"), "");
  EXPECT_EQ(trim("x"), "x");
}

TEST(EditDistance, Levenshtein) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(ClosestMatch, SuggestsTyposNotStrangers) {
  constexpr std::array<std::string_view, 3> keys{"sessions", "max_bytes_per_second", "dedupe"};
  EXPECT_EQ(closest_match("sesions", keys), "sessions");
  EXPECT_EQ(closest_match("Dedup", keys), "dedupe");
  EXPECT_EQ(closest_match("completely_unrelated", keys), std::nullopt);
}

TEST(SanitizeUtf8, KeepsValidReplacesInvalid) {
  EXPECT_EQ(sanitize_utf8("plain"), "plain");
  EXPECT_EQ(sanitize_utf8("mod\xC3\xA8le"), "mod\xC3\xA8le");
  EXPECT_EQ(sanitize_utf8("a\xFFz"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // truncated
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace modeldrop

namespace modeldrop {
namespace {

TEST(OnePrintableLine, EscapesControlCharactersAndReplacesInvalidUtf8) {
  EXPECT_EQ(one_printable_line("plain/café.zip", Tabs::keep), "plain/café.zip");
  EXPECT_EQ(one_printable_line("a\nb\rc\x1b[31m\x7f", Tabs::keep), "a\\nb\\rc\\x1b[31m\\x7f");
  EXPECT_EQ(one_printable_line("caf\xe9", Tabs::escape), "caf\xEF\xBF\xBD");
  EXPECT_EQ(one_printable_line("a\tb", Tabs::keep), "a\tb");
  EXPECT_EQ(one_printable_line("a\tb", Tabs::escape), "a\\tb");
}

}  // namespace
}  // namespace modeldrop
