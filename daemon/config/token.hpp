#pragma once

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

}  // namespace modeldrop::config
