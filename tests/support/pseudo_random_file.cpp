#include "support/pseudo_random_file.hpp"

#include <algorithm>
#include <fstream>
#include <random>
#include <stdexcept>
#include <vector>

namespace modeldrop::test {

void write_pseudo_random_file(const std::filesystem::path& path, std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<std::uint64_t> block(8192);
  std::size_t left = bytes;
  while (left > 0) {
    for (auto& word : block) word = rng();
    const std::size_t n = std::min(left, block.size() * sizeof(std::uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace modeldrop::test
