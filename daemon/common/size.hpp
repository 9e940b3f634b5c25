#pragma once

#include <cstdint>
#include <string>

namespace modeldrop {

// "1.5 GiB", "512 KiB", "17 B": for people, not for parsing back.
std::string format_bytes(std::uint64_t bytes);

// "410 MiB/s".
std::string format_rate(double bytes_per_second);

}  // namespace modeldrop
