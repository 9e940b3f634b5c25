#pragma once

// Archives for tests: incompressible, reproducible bytes from a seed, written in blocks so that
// files of many MiB cost little memory.

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace modeldrop::test {

void write_pseudo_random_file(const std::filesystem::path& path, std::size_t bytes, std::uint64_t seed);

}  // namespace modeldrop::test
