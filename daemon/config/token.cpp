#include "config/token.hpp"

#include "common/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace modeldrop::config {
namespace {

namespace fs = std::filesystem;

struct FileRead {
  std::optional<std::string> content;
  std::string error;
  mode_t mode = 0;
};

FileRead read_small_file(const fs::path& path) {
  FileRead result;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    result.error = std::strerror(errno);
    return result;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    result.error = "not a regular file";
    return result;
  }
  result.mode = st.st_mode;
  std::string content;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result.error = std::strerror(errno);
      ::close(fd);
      return result;
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
    if (content.size() > 64 * 1024) {
      result.error = "larger than 64 KiB, not a token";
      ::close(fd);
      return result;
    }
  }
  ::close(fd);
  result.content = std::move(content);
  return result;
}

}  // namespace

TokenEnvironment TokenEnvironment::from_process() {
  TokenEnvironment env;
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir != nullptr && *dir != '\0') {
    env.credentials_directory = fs::path(dir);
  }
  if (const char* key = std::getenv("NEBIUS_API_KEY"); key != nullptr) env.nebius_api_key = std::string(key);
  return env;
}

TokenFileRead read_token_file(const fs::path& path) {
  TokenFileRead result;
  auto read = read_small_file(path);
  if (!read.content) {
    result.error = read.error;
    return result;
  }
  const auto token = trim(*read.content);
  if (token.empty()) {
    result.error = "empty";
    return result;
  }
  result.token = std::string(token);
  if ((read.mode & (S_IRGRP | S_IROTH)) != 0) {
    result.warnings.push_back("token file " + path.string() +
                              " is readable by group or others; chmod 600 it (or 640 for a service group)");
  }
  return result;
}

Result<fs::path> resolve_token_file(std::string_view token_file, const TokenEnvironment& env) {
  if (!token_file.starts_with(kCredentialsDirectoryPrefix)) {
    return Result<fs::path>(boost::system::in_place_value, token_file);
  }
  if (!env.credentials_directory) {
    return make_error(std::string(token_file) +
                      ": $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with LoadCredential=)");
  }
  return Result<fs::path>(boost::system::in_place_value,
                          *env.credentials_directory / token_file.substr(kCredentialsDirectoryPrefix.size()));
}

TokenLookup find_token(const ApiConfig& api, const TokenEnvironment& env) {
  TokenLookup lookup;
  const auto from_file = [&](const fs::path& path, const std::string& source) {
    auto read = read_token_file(path);
    if (!read.token) return read.error;
    lookup.token = std::move(read.token);
    lookup.source = source;
    lookup.file = path;
    lookup.warnings = std::move(read.warnings);
    return std::string();
  };

  if (api.token_file) {
    // An explicit token_file that does not work is an error, never a silent fall-through.
    if (auto error = from_file(*api.token_file, "api.token_file " + api.token_file->string()); !error.empty()) {
      lookup.error = "api.token_file " + api.token_file->string() + ": cannot use it: " + error;
    }
    return lookup;
  }
  if (env.credentials_directory) {
    const fs::path credential = *env.credentials_directory / "api-token";
    std::error_code ec;
    if (fs::exists(credential, ec)) {
      if (auto error = from_file(credential, "systemd credential api-token"); !error.empty()) {
        lookup.error = "systemd credential " + credential.string() + ": cannot use it: " + error;
      }
      return lookup;
    }
  }
  if (env.nebius_api_key) {
    const auto token = trim(*env.nebius_api_key);
    if (!token.empty()) {
      lookup.token = std::string(token);
      lookup.source = "NEBIUS_API_KEY";
    }
  }
  return lookup;
}

}  // namespace modeldrop::config
