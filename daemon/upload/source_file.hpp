#pragma once

#include "upload/attempt.hpp"

#include <boost/system/result.hpp>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

namespace modeldrop::upload {

// Why the file cannot be (or could not be) sent as the job's file.
struct FileProblem {
  AttemptError error = AttemptError::file_unreadable;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const FileProblem& problem, const boost::source_location& loc);

template <class T>
using FileResult = boost::system::result<T, FileProblem>;

// The identity of whatever is at `path` now, without following a symlink (the daemon records
// it when it queues a file; tests and benchmarks use it to fill UploadRequest::expected).
FileResult<FileIdentity> identify_file(const std::filesystem::path& path);

// The one descriptor an attempt reads the archive from (docs/http.md): opened with O_NOFOLLOW
// and checked to be the queued file, unchanged, before a byte is sent.
class SourceFile {
 public:
  static FileResult<SourceFile> open(const std::filesystem::path& path, const FileIdentity& expected);

  SourceFile(SourceFile&& other) noexcept;
  SourceFile& operator=(SourceFile&& other) noexcept;
  SourceFile(const SourceFile&) = delete;
  SourceFile& operator=(const SourceFile&) = delete;
  ~SourceFile();

  [[nodiscard]] std::uint64_t size() const { return expected_.size; }
  [[nodiscard]] std::uint64_t remaining() const { return expected_.size - offset_; }

  // Reads the next bytes (never past the queued size) into `out`. A file that ends early
  // has shrunk: file_changed.
  FileResult<std::size_t> read(std::span<std::byte> out);

  // fstat of the open descriptor after sending: size or mtime differing from the queued
  // ones is file_changed. `after` receives what was seen either way.
  FileResult<void> check_unchanged(FileIdentity& after) const;

 private:
  SourceFile(int fd, std::filesystem::path path, FileIdentity expected)
      : fd_(fd), path_(std::move(path)), expected_(expected) {}

  int fd_ = -1;
  std::filesystem::path path_;
  FileIdentity expected_;
  std::uint64_t offset_ = 0;
};

// Incremental SHA-256 (OpenSSL's EVP, which uses the SHA extensions where the CPU has them).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::span<const std::byte> data);
  std::string hex_digest();  // lowercase; ends the computation

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace modeldrop::upload
