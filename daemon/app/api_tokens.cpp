#include "app/api_tokens.hpp"

#include "common/logging.hpp"

#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <algorithm>

namespace modeldrop::app {

namespace fs = std::filesystem;

ApiTokens::ApiTokens(config::TokenLookup global, const config::Config& config, config::TokenEnvironment environment)
    : environment_(std::move(environment)), global_(std::move(global)), api_(config.api) {
  global_stamp_ = stamp_of(global_.file);
  take_config(config);
  for (const auto& [path, key] : watches_) {
    if (key && !files_.contains(*key)) refresh(*key, true);
  }
}

void ApiTokens::take_config(const config::Config& config) {
  api_ = config.api;
  watches_.clear();
  for (const auto& watch : config.watch) watches_.emplace_back(watch.path, watch.token_file);
}

std::optional<ApiTokens::FileStamp> ApiTokens::stamp_of(const std::optional<fs::path>& path) {
  struct stat st {};
  if (!path || ::stat(path->c_str(), &st) != 0) return std::nullopt;
  return FileStamp{st.st_dev, st.st_ino, st.st_size,
                   std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                   std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
}

ApiTokens::FileToken ApiTokens::read(const std::string& name) const {
  FileToken file;
  auto path = config::resolve_token_file(name, environment_);
  if (!path) {
    file.unusable = path.error().message;
    return file;
  }
  file.path = *path;
  file.stamp = stamp_of(file.path);
  auto read = config::read_token_file(*path);
  for (const auto& warning : read.warnings) spdlog::warn("{}", warning);
  if (!read.token) {
    file.unusable = "token_file " + path->string() + ": cannot use it: " + read.error;
    return file;
  }
  register_secret(*read.token);  // before anything could log it
  file.token = std::move(read.token);
  return file;
}

std::optional<ApiTokens::Change> ApiTokens::refresh(const std::string& name, bool always) {
  auto known = files_.find(name);
  if (known != files_.end() && !always && stamp_of(known->second.path) == known->second.stamp) return std::nullopt;
  FileToken now = read(name);
  const bool is_new = known == files_.end();
  const bool changed =
      is_new || now.token != known->second.token || (!now.token && now.unusable != known->second.unusable);
  files_.insert_or_assign(name, now);
  if (!changed) return std::nullopt;
  const TokenKey key = name;
  if (now.token) {
    spdlog::info("API token for {} {}", label(key), is_new ? "read" : "changed");
    return Change{key, std::nullopt};
  }
  spdlog::warn("no usable API token for {}: {}; its uploads wait until the file can be read", label(key), now.unusable);
  return Change{key, now.unusable};
}

Result<std::optional<std::string>> ApiTokens::token_for(const TokenKey& key) {
  if (!key) return Result<std::optional<std::string>>(boost::system::in_place_value, std::nullopt);
  if (!files_.contains(*key)) refresh(*key, true);  // `modeldrop add --token-file`: first use
  const auto& file = files_.at(*key);
  if (!file.token) return make_error(file.unusable);
  return Result<std::optional<std::string>>(boost::system::in_place_value, file.token);
}

std::string ApiTokens::label(const TokenKey& key) const {
  // With one token there is nothing to tell apart: the plain wording.
  if (!key && files_.empty()) return "";
  std::vector<std::string> users;
  for (const auto& [path, token] : watches_) {
    if (token == key) users.push_back(path.string());
  }
  std::string who;
  if (users.empty()) {
    who = key ? "modeldrop add jobs" : "jobs without a token_file";
  } else {
    who = users.size() == 1 ? "watch " : "watches ";
    for (std::size_t i = 0; i < users.size(); ++i) who += (i > 0 ? ", " : "") + users[i];
  }
  if (!key) return who + " (the global token, " + global_.source + ")";
  return who + " (token_file " + *key + ")";
}

ApiTokens::Change ApiTokens::replace_global(config::TokenLookup global) {
  register_secret(*global.token);
  global_ = std::move(global);
  spdlog::info("API token changed (from {})", global_.source);
  return Change{std::nullopt, std::nullopt};
}

std::vector<ApiTokens::Change> ApiTokens::unusable() const {
  std::vector<Change> changes;
  for (const auto& [name, file] : files_) {
    if (!file.token) changes.push_back({name, file.unusable});
  }
  return changes;
}

std::vector<ApiTokens::Change> ApiTokens::check() {
  std::vector<Change> changes;
  if (global_.file) {
    const auto stamp = stamp_of(global_.file);
    if (stamp != global_stamp_) {
      global_stamp_ = stamp;
      auto lookup = config::find_token(api_, environment_);
      if (lookup.error || !lookup.token) {
        spdlog::warn("token file changed but cannot be used: {}", lookup.error.value_or("no token"));
      } else if (*lookup.token != *global_.token) {
        changes.push_back(replace_global(std::move(lookup)));
      }
    }
  }
  std::vector<std::string> names;  // refresh() replaces entries of files_
  for (const auto& [name, file] : files_) names.push_back(name);
  for (const auto& name : names) {
    if (auto change = refresh(name, false)) changes.push_back(std::move(*change));
  }
  return changes;
}

std::vector<ApiTokens::Change> ApiTokens::reload(config::TokenLookup global, const config::Config& config) {
  take_config(config);
  std::vector<Change> changes;
  if (global.token != global_.token) changes.push_back(replace_global(std::move(global)));
  global_stamp_ = stamp_of(global_.file);
  std::vector<std::string> names;
  for (const auto& [name, file] : files_) names.push_back(name);
  for (const auto& [path, key] : watches_) {
    if (key) names.push_back(*key);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const auto& name : names) {
    if (auto change = refresh(name, true)) changes.push_back(std::move(*change));
  }
  return changes;
}

}  // namespace modeldrop::app
