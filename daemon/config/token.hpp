#pragma once

#include "common/error.hpp"
#include "config/config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::config {

// Where the token lookup looks besides the config (injected so tests need no real environment).
struct TokenEnvironment {
  std::optional<std::filesystem::path> credentials_directory;  // $CREDENTIALS_DIRECTORY
  std::optional<std::string> nebius_api_key;                   // $NEBIUS_API_KEY

  static TokenEnvironment from_process();
};

// docs/configuration.md: api.token_file, then $CREDENTIALS_DIRECTORY/api-token, then $NEBIUS_API_KEY;
// first found wins; surrounding whitespace trimmed. Messages never contain the token.
struct TokenLookup {
  std::optional<std::string> token;
  std::string source;                         // "api.token_file /etc/x", "systemd credential", "NEBIUS_API_KEY"
  std::optional<std::filesystem::path> file;  // the file it came from, to watch for rotation
  std::vector<std::string> warnings;          // e.g. a token file readable by group or others
  std::optional<std::string> error;           // an explicit token_file that is missing, unreadable or empty
};

TokenLookup find_token(const ApiConfig& api, const TokenEnvironment& env);

// One token file, read as every token file is (the global one and each watch's): surrounding
// whitespace trimmed, at most 64 KiB, a warning when its group or others may read it. `error`
// says why it cannot be used (missing, unreadable, empty); no message ever holds the token.
struct TokenFileRead {
  std::optional<std::string> token;
  std::vector<std::string> warnings;
  std::string error;  // empty when `token` is set
};

TokenFileRead read_token_file(const std::filesystem::path& path);

// How a token_file (watch[].token_file, jobs.token_file) names a file below systemd's credentials
// directory: "${CREDENTIALS_DIRECTORY}/api-token-teamb". The only variable a token_file expands.
inline constexpr std::string_view kCredentialsDirectoryPrefix = "${CREDENTIALS_DIRECTORY}/";

// The file a token_file names on this machine: the path itself, or the name below
// $CREDENTIALS_DIRECTORY, which must then be set.
Result<std::filesystem::path> resolve_token_file(std::string_view token_file, const TokenEnvironment& env);

}  // namespace modeldrop::config
