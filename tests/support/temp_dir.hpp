#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace modeldrop::test {

// A throwaway directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Writes `content` to `name` (parents created) and returns the full path.
  std::filesystem::path write(std::string_view name, std::string_view content, unsigned mode = 0644) const;

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& path);

}  // namespace modeldrop::test
