#include "upload/source_file.hpp"

#include "common/error.hpp"

#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace modeldrop::upload {
namespace {

std::int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + static_cast<std::int64_t>(st.st_mtim.tv_nsec);
}

FileIdentity identity_of(const struct stat& st) {
  return FileIdentity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                      static_cast<std::uint64_t>(st.st_size), mtime_ns_of(st)};
}

FileProblem problem(AttemptError error, const std::filesystem::path& path, const std::string& what) {
  return FileProblem{error, path.string() + ": " + what};
}

FileProblem open_problem(const std::filesystem::path& path, int errno_value) {
  switch (errno_value) {
    case ENOENT:
    case ENOTDIR:
      return problem(AttemptError::file_missing, path, "no longer exists");
    case ELOOP:
      return problem(AttemptError::file_replaced, path, "is now a symbolic link");
    default:
      return problem(AttemptError::file_unreadable, path, std::string("cannot open: ") + std::strerror(errno_value));
  }
}

std::string describe_change(const FileIdentity& expected, const FileIdentity& seen) {
  if (seen.size != expected.size) {
    return "changed size from " + std::to_string(expected.size) + " to " + std::to_string(seen.size) + " bytes";
  }
  return "changed modification time";
}

}  // namespace

void throw_exception_from_error(const FileProblem& problem, const boost::source_location& /*loc*/) {
  throw std::runtime_error(problem.message);
}

FileResult<FileIdentity> identify_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return open_problem(path, errno);
  if (S_ISLNK(st.st_mode)) return problem(AttemptError::file_replaced, path, "is a symbolic link");
  if (!S_ISREG(st.st_mode)) return problem(AttemptError::file_not_regular, path, "is not a regular file");
  return identity_of(st);
}

FileResult<SourceFile> SourceFile::open(const std::filesystem::path& path, const FileIdentity& expected) {
  // O_NONBLOCK: a FIFO swapped in must not block the event loop in open(); it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return open_problem(path, errno);
  SourceFile file(fd, path, expected);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return problem(AttemptError::file_unreadable, path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return problem(AttemptError::file_not_regular, path, "is not a regular file");
  const FileIdentity seen = identity_of(st);
  if (seen.device != expected.device || seen.inode != expected.inode) {
    return problem(AttemptError::file_replaced, path, "is another file than the one queued (device or inode differ)");
  }
  if (seen.size != expected.size || seen.mtime_ns != expected.mtime_ns) {
    return problem(AttemptError::file_changed, path, describe_change(expected, seen) + " since it was queued");
  }
  // Sequential read-ahead: the whole file is read once, front to back.
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return file;
}

SourceFile::SourceFile(SourceFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      expected_(other.expected_),
      offset_(other.offset_) {}

SourceFile& SourceFile::operator=(SourceFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    expected_ = other.expected_;
    offset_ = other.offset_;
  }
  return *this;
}

SourceFile::~SourceFile() {
  if (fd_ >= 0) ::close(fd_);
}

FileResult<std::size_t> SourceFile::read(std::span<std::byte> out) {
  const std::size_t wanted = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), remaining()));
  if (wanted == 0) return std::size_t{0};
  for (;;) {
    const ssize_t n = ::read(fd_, out.data(), wanted);
    if (n > 0) {
      offset_ += static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
    if (n == 0) {
      return problem(AttemptError::file_changed, path_,
                     "ended after " + std::to_string(offset_) + " of " + std::to_string(expected_.size) +
                         " bytes (it shrank while being sent)");
    }
    if (errno != EINTR)
      return problem(AttemptError::file_unreadable, path_, std::string("read: ") + std::strerror(errno));
  }
}

FileResult<void> SourceFile::check_unchanged(FileIdentity& after) const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return problem(AttemptError::file_unreadable, path_, std::strerror(errno));
  after = identity_of(st);
  if (after.size != expected_.size || after.mtime_ns != expected_.mtime_ns) {
    return problem(AttemptError::file_changed, path_, describe_change(expected_, after) + " while it was sent");
  }
  return {};
}

struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  if (context_->ctx == nullptr || EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL cannot initialise SHA-256");
  }
}

Sha256::~Sha256() = default;

void Sha256::update(std::span<const std::byte> data) {
  EVP_DigestUpdate(context_->ctx, data.data(), data.size());
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_->ctx, digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2U);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4U];
    hex += kHex[digest[i] & 0x0FU];
  }
  return hex;
}

}  // namespace modeldrop::upload
