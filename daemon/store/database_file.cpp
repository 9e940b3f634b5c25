#include "store/database_file.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>

namespace modeldrop::store {

namespace {

std::optional<gid_t> find_group(std::string_view name) {
  const std::string group_name(name);
  group entry{};
  group* found = nullptr;
  std::array<char, 16384> buffer{};
  if (getgrnam_r(group_name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return found->gr_gid;
}

// mkdir applies the umask, and cannot set the setgid bit on every system: chmod does both.
Result<void> make_directory(const std::filesystem::path& dir, std::string_view group, std::optional<gid_t> gid,
                            std::vector<std::string>& warnings) {
  if (::mkdir(dir.c_str(), kDatabaseDirectoryMode & 0777U) != 0) {
    if (errno == EEXIST) return {};  // created meanwhile by someone else: theirs to set up
    return errno_error("cannot create the database directory " + dir.string(), errno);
  }
  // Only when needed: under the packaged unit the group is already right, and its seccomp
  // filter refuses chown (and RestrictSUIDSGID refuses the setgid bit).
  struct stat st {};
  if (gid && ::stat(dir.c_str(), &st) == 0 && st.st_gid != *gid &&
      ::chown(dir.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    warnings.push_back(errno_error("cannot give " + dir.string() + " to group " + std::string(group), errno).message);
  }
  if (::chmod(dir.c_str(), kDatabaseDirectoryMode) != 0) {
    if (errno != EPERM || ::chmod(dir.c_str(), kDatabaseDirectoryMode & ~mode_t{S_ISGID}) != 0) {
      return errno_error("cannot set the mode of " + dir.string(), errno);
    }
    warnings.push_back("cannot set the setgid bit on " + dir.string() + ": new files there keep the daemon's group");
  }
  return {};
}

}  // namespace

Result<std::vector<std::string>> create_database_file(const std::filesystem::path& file, std::string_view group) {
  std::vector<std::string> warnings;
  const auto gid = find_group(group);
  const auto dir = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    // Parents above the database's own directory are ordinary directories.
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec) return errno_error("cannot create " + dir.parent_path().string(), ec.value());
    if (auto made = make_directory(dir, group, gid, warnings); !made) return made.error();
  }
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kDatabaseFileMode);
  if (fd < 0) {
    if (errno == EEXIST) return warnings;
    return errno_error("cannot create the database " + file.string(), errno);
  }
  std::optional<Error> failure;
  struct stat st {};
  if (gid && ::fstat(fd, &st) == 0 && st.st_gid != *gid && ::fchown(fd, static_cast<uid_t>(-1), *gid) != 0) {
    warnings.push_back(errno_error("cannot give " + file.string() + " to group " + std::string(group), errno).message);
  }
  if (::fchmod(fd, kDatabaseFileMode) != 0) failure = errno_error("cannot set the mode of " + file.string(), errno);
  ::close(fd);
  if (failure) return *failure;
  return warnings;
}

}  // namespace modeldrop::store
