#include "common/size.hpp"

#include <array>
#include <cstdio>

namespace modeldrop {

std::string format_bytes(std::uint64_t bytes) {
  constexpr std::array<const char*, 6> kUnits{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < kUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), value < 10 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return buf.data();
}

std::string format_rate(double bytes_per_second) {
  if (bytes_per_second <= 0) return "0 B/s";
  return format_bytes(static_cast<std::uint64_t>(bytes_per_second)) + "/s";
}

}  // namespace modeldrop
