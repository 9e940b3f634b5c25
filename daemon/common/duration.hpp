#pragma once

#include "common/error.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace modeldrop {

using Duration = std::chrono::milliseconds;

// "500ms", "2s", "10m", "1h", "3d"; a unit is required except for a bare "0".
Result<Duration> parse_duration(std::string_view text);

// The shortest exact form parse_duration reads back: 90000ms -> "90s", 3600000ms -> "1h".
std::string format_duration(Duration d);

// A bare integer (bytes) or "512KiB", "10MiB" (1024-based), "2GB" (1000-based), "7B".
Result<std::uint64_t> parse_size(std::string_view text);

}  // namespace modeldrop
