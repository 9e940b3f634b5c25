#include "watch/after_action.hpp"

#include "common/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace modeldrop::watch {
namespace {

namespace fs = std::filesystem;

// More numbered names than any done directory holds for one archive name.
constexpr unsigned kMaxNumberedNames = 100000;
// NAME_MAX of Linux filesystems: the longest name, in bytes.
constexpr std::size_t kNameMax = 255;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  // close(2)'s own result matters after writing: it can report a deferred write error.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Renames (or links) `from` to the first free numbered name in `dir`. nullopt when `from`
// is on another filesystem than `dir`.
Result<std::optional<fs::path>> place_under_free_name(const fs::path& from, const fs::path& dir,
                                                      std::string_view name) {
  for (unsigned n = 0; n < kMaxNumberedNames; ++n) {
    fs::path candidate = dir / numbered_name(name, n);
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, candidate.c_str(), RENAME_NOREPLACE) == 0) {
      return std::optional<fs::path>(std::move(candidate));
    }
    int error = errno;
    if (error == EINVAL || error == ENOSYS) {
      // A filesystem without RENAME_NOREPLACE: link(2) fails on an existing name just the same.
      if (::link(from.c_str(), candidate.c_str()) == 0) {
        if (::unlink(from.c_str()) != 0) {
          error = errno;
          ::unlink(candidate.c_str());
          return errno_error("cannot remove " + from.string() + " after linking it to " + candidate.string(), error);
        }
        return std::optional<fs::path>(std::move(candidate));
      }
      error = errno;
    }
    if (error == EEXIST) continue;
    if (error == EXDEV) return std::optional<fs::path>();
    return errno_error("cannot move " + from.string() + " to " + candidate.string(), error);
  }
  return make_error("cannot move " + from.string() + " into " + dir.string() + ": every numbered name up to " +
                    std::to_string(kMaxNumberedNames) + " is taken");
}

// Gives the unnamed file `fd` (O_TMPFILE) the first free numbered name in `dir`; like
// RENAME_NOREPLACE, linkat(2) never replaces a name that is taken.
Result<fs::path> link_under_free_name(int fd, const fs::path& dir, std::string_view name) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  for (unsigned n = 0; n < kMaxNumberedNames; ++n) {
    fs::path candidate = dir / numbered_name(name, n);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, candidate.c_str(), AT_SYMLINK_FOLLOW) == 0) {
      return Result<fs::path>(boost::system::in_place_value, std::move(candidate));
    }
    const int error = errno;
    if (error == EEXIST) continue;
    return errno_error("cannot name the copy " + candidate.string(), error);
  }
  return make_error("cannot move into " + dir.string() + ": every numbered name up to " +
                    std::to_string(kMaxNumberedNames) + " is taken");
}

Result<void> copy_contents(int from, int to, std::uint64_t expected, const fs::path& file) {
  std::uint64_t copied = 0;
  bool kernel_copy = true;
  std::vector<char> buffer;
  for (;;) {
    ssize_t n = 0;
    if (kernel_copy) {
      n = ::copy_file_range(from, nullptr, to, nullptr, std::size_t{1} << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) && copied == 0) {
        kernel_copy = false;
        buffer.resize(std::size_t{1} << 20);
        continue;
      }
    } else {
      n = ::read(from, buffer.data(), buffer.size());
      for (ssize_t written = 0; n > 0 && written < n;) {
        const ssize_t w = ::write(to, buffer.data() + written, static_cast<std::size_t>(n - written));
        if (w < 0) {
          const int error = errno;
          if (error == EINTR) continue;
          return errno_error("cannot write the copy of " + file.string(), error);
        }
        written += w;
      }
    }
    if (n == 0) break;
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return errno_error("cannot copy " + file.string(), error);
    }
    copied += static_cast<std::uint64_t>(n);
  }
  if (copied != expected) {
    return make_error("cannot copy " + file.string() + ": it changed while it was copied (" + std::to_string(copied) +
                      " of " + std::to_string(expected) + " bytes)");
  }
  return {};
}

// Whether the files behind two descriptors hold the same `size` bytes (read with pread: the
// descriptors' offsets stay where they are).
Result<bool> same_bytes(int a, int b, std::uint64_t size, const fs::path& file) {
  std::vector<char> left(std::size_t{1} << 20);
  std::vector<char> right(left.size());
  for (std::uint64_t offset = 0; offset < size;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left.size(), size - offset));
    const ssize_t l = ::pread(a, left.data(), want, static_cast<off_t>(offset));
    const ssize_t r = ::pread(b, right.data(), want, static_cast<off_t>(offset));
    if (l < 0 || r < 0) {
      const int error = errno;
      return errno_error("cannot compare " + file.string() + " with an earlier copy", error);
    }
    if (l != r || l == 0 || std::memcmp(left.data(), right.data(), static_cast<std::size_t>(l)) != 0) return false;
    offset += static_cast<std::uint64_t>(l);
  }
  return true;
}

// The copy a crash left behind when it interrupted an earlier move of this very file between
// naming the copy and removing the original: under `name` or a numbered name in `dir`, with the
// original's size, mtime (kept by the copy) and bytes. Copies take the first free name, so the
// search ends at the first name not taken.
Result<std::optional<fs::path>> find_finished_copy(int source, const struct stat& original, const fs::path& dir,
                                                   std::string_view name, const fs::path& file) {
  for (unsigned n = 0; n < kMaxNumberedNames; ++n) {
    fs::path candidate = dir / numbered_name(name, n);
    struct stat st {};
    if (::lstat(candidate.c_str(), &st) != 0) return std::optional<fs::path>();
    if (!S_ISREG(st.st_mode) || st.st_size != original.st_size || st.st_mtim.tv_sec != original.st_mtim.tv_sec ||
        st.st_mtim.tv_nsec != original.st_mtim.tv_nsec) {
      continue;
    }
    FileDescriptor copy(::open(candidate.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!copy.valid()) continue;
    auto same = same_bytes(source, copy.get(), static_cast<std::uint64_t>(original.st_size), file);
    if (!same) return same.error();
    if (*same) return std::optional<fs::path>(std::move(candidate));
  }
  return std::optional<fs::path>();
}

Result<fs::path> move_across_filesystems(const fs::path& file, const fs::path& dir, std::string_view name) {
  FileDescriptor source(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!source.valid()) {
    const int error = errno;
    return errno_error("cannot open " + file.string() + " to copy it to " + dir.string(), error);
  }
  struct stat st {};
  if (::fstat(source.get(), &st) != 0) {
    const int error = errno;
    return errno_error("cannot examine " + file.string(), error);
  }
  if (!S_ISREG(st.st_mode)) return make_error("cannot move " + file.string() + ": not a regular file");

  // A crash after the copy got its name but before the original was removed: finish that move
  // rather than make a second copy (name.1.tar).
  auto finished = find_finished_copy(source.get(), st, dir, name, file);
  if (!finished) return finished.error();
  if (*finished) {
    if (::unlink(file.c_str()) != 0) {
      const int error = errno;
      return errno_error("cannot remove " + file.string() + ", already copied to " + (*finished)->string(), error);
    }
    return Result<fs::path>(boost::system::in_place_value, std::move(**finished));
  }

  // The copy is an unnamed file (O_TMPFILE), named only once complete: a crash during the copy
  // leaves nothing behind in `dir`. Where that is impossible (no O_TMPFILE, no /proc), a dot
  // name, ignored by any watcher that might see the done directory (docs/configuration.md).
  std::string temporary;
  int fd = ::access("/proc/self/fd", X_OK) == 0 ? ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600) : -1;
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL || errno == ENOENT || errno == EACCES)) {
    temporary = (dir / ("." + std::string(name) + ".modeldrop-XXXXXX")).string();
    fd = ::mkostemp(temporary.data(), O_CLOEXEC);
  }
  FileDescriptor copy(fd);
  if (!copy.valid()) {
    const int error = errno;
    return errno_error("cannot create a temporary file in " + dir.string(), error);
  }
  const auto fail = [&](Error error) -> Result<fs::path> {
    if (!temporary.empty()) ::unlink(temporary.c_str());
    return error;
  };

  if (auto copied = copy_contents(source.get(), copy.get(), static_cast<std::uint64_t>(st.st_size), file); !copied) {
    return fail(copied.error());
  }
  const std::array<struct timespec, 2> times{st.st_atim, st.st_mtim};
  if (::fchmod(copy.get(), st.st_mode & 07777) != 0 || ::futimens(copy.get(), times.data()) != 0) {
    const int error = errno;
    return fail(errno_error("cannot set the mode and times of the copy of " + file.string(), error));
  }
  if (::fsync(copy.get()) != 0) {
    const int error = errno;
    return fail(errno_error("cannot write the copy of " + file.string() + " to disk", error));
  }
  fs::path destination;
  if (temporary.empty()) {
    auto linked = link_under_free_name(copy.get(), dir, name);
    if (!linked) return linked.error();
    destination = std::move(*linked);
    (void)copy.close();  // fsync has reported any write error
  } else {
    if (copy.close() != 0) {
      const int error = errno;
      return fail(errno_error("cannot write the copy of " + file.string() + " to disk", error));
    }
    auto placed = place_under_free_name(temporary, dir, name);
    if (!placed) return fail(placed.error());
    if (!placed->has_value())
      return fail(make_error("cannot rename within " + dir.string() + ": reported as cross-device"));
    destination = **placed;
  }

  FileDescriptor directory(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory.valid() || ::fsync(directory.get()) != 0) {
    const int error = errno;
    ::unlink(destination.c_str());
    return errno_error("cannot write directory " + dir.string() + " to disk", error);
  }
  if (::unlink(file.c_str()) != 0) {
    // Keep exactly one copy: the source stays where the job says it is.
    const int error = errno;
    ::unlink(destination.c_str());
    return errno_error("copied " + file.string() + " to " + dir.string() + " but cannot remove the original", error);
  }
  // in_place: a path also converts to Error's message, which makes the plain conversion ambiguous.
  return Result<fs::path>(boost::system::in_place_value, destination);
}

}  // namespace

std::string numbered_name(std::string_view name, unsigned n) {
  if (n == 0) return std::string(name);
  const std::string_view extension = archive_extension(name);
  std::string_view stem = name.substr(0, name.size() - extension.size());
  const std::string number = "." + std::to_string(n);
  // A name already NAME_MAX long still gets a free numbered one: the stem gives up its tail,
  // whole UTF-8 sequences only (a continuation byte never starts the cut).
  const std::size_t room = kNameMax - std::min(kNameMax, number.size() + extension.size());
  if (stem.size() > room) {
    std::size_t cut = room;
    while (cut > 0 && (static_cast<unsigned char>(stem[cut]) & 0xC0U) == 0x80U) --cut;
    stem = stem.substr(0, cut);
  }
  return std::string(stem) + number + std::string(extension);
}

fs::path target_directory(const fs::path& file, const fs::path& watch_dir, const fs::path& target_root) {
  const fs::path relative = file.parent_path().lexically_relative(watch_dir);
  if (relative.empty() || relative == "." || *relative.begin() == "..") return target_root;
  return target_root / relative;
}

Result<fs::path> move_into(const fs::path& file, const fs::path& dir) {
  const std::string name = file.filename().string();
  if (name.empty()) return make_error("cannot move " + file.string() + ": no file name");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("cannot create " + dir.string() + ": " + ec.message(), ec);
  auto placed = place_under_free_name(file, dir, name);
  if (!placed) return placed.error();
  if (placed->has_value()) return Result<fs::path>(boost::system::in_place_value, **placed);
  return move_across_filesystems(file, dir, name);
}

Result<void> remove_file(const fs::path& file) {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
    const int error = errno;
    return errno_error("cannot delete " + file.string(), error);
  }
  return {};
}

Result<std::optional<fs::path>> apply_success_action(const config::WatchConfig& watch, const fs::path& file) {
  switch (watch.on_success) {
    case config::SuccessAction::keep:
      return std::optional<fs::path>(file);
    case config::SuccessAction::remove:
      if (auto removed = remove_file(file); !removed) return removed.error();
      return std::optional<fs::path>();
    case config::SuccessAction::move:
      break;
  }
  auto moved = move_into(file, target_directory(file, watch.path, watch.done_dir));
  if (!moved) return moved.error();
  return std::optional<fs::path>(std::move(*moved));
}

Result<std::optional<fs::path>> apply_failure_action(const config::WatchConfig& watch, const fs::path& file) {
  if (watch.on_failure == config::FailureAction::keep) return std::optional<fs::path>(file);
  auto moved = move_into(file, target_directory(file, watch.path, watch.failed_dir));
  if (!moved) return moved.error();
  return std::optional<fs::path>(std::move(*moved));
}

}  // namespace modeldrop::watch
