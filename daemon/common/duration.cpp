#include "common/duration.hpp"

#include <array>
#include <charconv>
#include <limits>

namespace modeldrop {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

// Longest suffixes first so that "ms" is not read as "m" + garbage.
constexpr std::array<Unit, 5> kDurationUnits{{
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
    {"d", 24 * 60 * 60 * 1000},
}};

constexpr std::array<Unit, 9> kSizeUnits{{
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"KB", 1000ULL},
    {"MB", 1000ULL * 1000},
    {"GB", 1000ULL * 1000 * 1000},
    {"TB", 1000ULL * 1000 * 1000 * 1000},
    {"B", 1},
}};

// Splits "123abc" into 123 and "abc"; fails on a missing or overflowing number.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& rest) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, number);
  if (ec != std::errc{} || ptr == first) return false;
  rest = std::string_view(ptr, static_cast<std::size_t>(last - ptr));
  return true;
}

bool checked_multiply(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const auto bad = [&] {
    return make_error("not a duration: \"" + std::string(text) +
                      "\" (use a number and a unit: 500ms, 2s, 10m, 1h, 3d)");
  };
  if (text == "0") return Duration{0};
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return bad();
  for (const auto& candidate : kDurationUnits) {
    if (unit != candidate.suffix) continue;
    std::uint64_t ms = 0;
    // Bounded far below the int64 milliseconds range so that later arithmetic cannot overflow.
    constexpr std::uint64_t kMaxMs = 100ULL * 365 * 24 * 60 * 60 * 1000;
    if (!checked_multiply(number, candidate.factor, ms) || ms > kMaxMs) {
      return make_error("duration too large: \"" + std::string(text) + "\" (at most 100 years)");
    }
    return Duration{static_cast<Duration::rep>(ms)};
  }
  return bad();
}

std::string format_duration(Duration d) {
  const auto ms = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
  if (ms == 0) return "0";
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    if (ms % it->factor == 0) return std::to_string(ms / it->factor) + std::string(it->suffix);
  }
  return std::to_string(ms) + "ms";
}

Result<std::uint64_t> parse_size(std::string_view text) {
  const auto bad = [&] {
    return make_error("not a size: \"" + std::string(text) + "\" (use bytes or a unit: 512KiB, 10MiB, 2GB)");
  };
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return bad();
  if (unit.empty()) return number;
  for (const auto& candidate : kSizeUnits) {
    if (unit != candidate.suffix) continue;
    std::uint64_t bytes = 0;
    if (!checked_multiply(number, candidate.factor, bytes) ||
        bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return make_error("size too large: \"" + std::string(text) + "\"");
    }
    return bytes;
  }
  return bad();
}

}  // namespace modeldrop
