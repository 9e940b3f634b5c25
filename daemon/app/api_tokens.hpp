#pragma once

// Every API token the daemon sends: the global one (api.token_file, the systemd credential
// api-token, NEBIUS_API_KEY) and one per token file a watch or a job names. Each file is read
// as the global token is (config::read_token_file: trimmed, warned about when others may read
// it), its token registered as a log secret at once, and read again when it changes (check(),
// every few seconds) and on SIGHUP (reload()). A file that cannot be used holds only its own
// jobs. Lives on the event loop; the files are a few bytes each.

#include "app/job_tokens.hpp"
#include "config/config.hpp"
#include "config/token.hpp"

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace modeldrop::app {

class ApiTokens final : public JobTokens {
 public:
  // `global` was found (the daemon refuses to start without it); the config's token files are
  // read here, and one that cannot be used is logged (and listed by unusable()).
  ApiTokens(config::TokenLookup global, const config::Config& config, config::TokenEnvironment environment);

  // None for the global token (the pool holds it: see global()); a token file's token; or why
  // the file cannot be used. A file no watch names (`modeldrop add --token-file`) is read on
  // first use and watched from then on.
  Result<std::optional<std::string>> token_for(const TokenKey& key) override;
  [[nodiscard]] std::string label(const TokenKey& key) const override;
  [[nodiscard]] const config::TokenLookup& global() const { return global_; }

  // A token that is new (or usable again), or a token file that can no longer be used.
  struct Change {
    TokenKey key;
    std::optional<std::string> unusable;  // none: the key has a new, usable token
  };
  // The token files that cannot be used now (at startup: their jobs are held at once).
  [[nodiscard]] std::vector<Change> unusable() const;
  // Files whose stat changed are read again. The global token keeps its value when its file
  // becomes unusable (logged; its jobs are not held), as the single-token daemon always did.
  std::vector<Change> check();
  // SIGHUP: the new config's watches and global lookup; every token file is read again.
  std::vector<Change> reload(config::TokenLookup global, const config::Config& config);

 private:
  // What stat() says of a file, to notice a rewrite, a replacement or a chmod.
  struct FileStamp {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  struct FileToken {
    std::optional<std::filesystem::path> path;  // none when the name cannot be resolved here
    std::optional<FileStamp> stamp;             // none: missing when last read
    std::optional<std::string> token;
    std::string unusable;  // why not, when there is no token
  };

  static std::optional<FileStamp> stamp_of(const std::optional<std::filesystem::path>& path);
  FileToken read(const std::string& name) const;
  // Reads `name` again (always, or when its stat changed); the change, if its token or its
  // usability differs from before.
  std::optional<Change> refresh(const std::string& name, bool always);
  void take_config(const config::Config& config);
  // A new global token (found by the lookup): registered as a secret, logged by its source.
  Change replace_global(config::TokenLookup global);

  config::TokenEnvironment environment_;
  config::TokenLookup global_;
  config::ApiConfig api_;  // for the global lookup again when its file changes
  std::optional<FileStamp> global_stamp_;
  std::vector<std::pair<std::filesystem::path, TokenKey>> watches_;  // each watch and its token
  std::map<std::string, FileToken> files_;                           // by token_file name
};

}  // namespace modeldrop::app
