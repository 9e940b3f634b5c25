#pragma once

// Which API token a job's requests carry. A job names its token by its token_file (its watch's
// token_file, or `modeldrop add --token-file`); jobs without one use the global token.

#include "common/error.hpp"

#include <optional>
#include <string>

namespace modeldrop::app {

// A token as jobs.token_file names it; none for the global token.
using TokenKey = std::optional<std::string>;

class JobTokens {
 public:
  virtual ~JobTokens() = default;
  // The token to send: none for the upload pool's own (the global token), or why the token
  // cannot be used (a token file that is missing, unreadable or empty): its jobs wait.
  virtual Result<std::optional<std::string>> token_for(const TokenKey& key) = 0;
  // Who uses the token, as daemon.held_reason names it ("watch /srv/teamb (token_file …)");
  // empty keeps the plain wording of a daemon with one token.
  [[nodiscard]] virtual std::string label(const TokenKey& key) const = 0;
};

}  // namespace modeldrop::app
