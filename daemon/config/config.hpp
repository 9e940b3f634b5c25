#pragma once

#include "common/duration.hpp"
#include "common/logging.hpp"
#include "preflight/archive_validation.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::config {

// Every key of docs/configuration.md with its default. Built only by load_config, then never changed:
// a reload builds a new Config.

struct ApiConfig {
  std::string base_url = "https://api.tokenfactory.nebius.com";
  std::optional<std::filesystem::path> token_file;
  std::optional<std::string> project_id;
  std::optional<std::filesystem::path> ca_file;
  std::optional<std::string> proxy;
  Duration connect_timeout = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(60);
};

struct UploadConfig {
  int sessions = 4;
  std::uint64_t max_bytes_per_second = 0;  // 0 = unlimited
  bool dedupe = true;
};

struct RetryConfig {
  Duration initial_backoff = std::chrono::seconds(2);
  Duration max_backoff = std::chrono::minutes(15);
  int max_attempts = 0;                             // 0 = no cap
  Duration give_up_after = std::chrono::hours(72);  // 0 = no cap
};

enum class SuccessAction { move, keep, remove };

// How often a watch directory is rescanned on top of inotify: network filesystems do not report
// writes made on another machine.
struct PollSetting {
  enum class Kind {
    automatic,  // rescan only directories on a network or FUSE filesystem (statfs)
    off,
    every,  // rescan every `interval`
  };
  Kind kind = Kind::automatic;
  Duration interval{0};  // for Kind::every
  friend bool operator==(const PollSetting&, const PollSetting&) = default;
};
enum class FailureAction { move, keep };

// A custom model made from each archive the watch uploads (`register`; docs/configuration.md).
struct RegisterConfig {
  std::string base_model;
  // A template: {stem} is the archive's name without its archive extension, {date} the UTC
  // date YYYYMMDD when the archive was queued (model_registration.hpp expands it).
  std::string name = "{stem}";
  std::optional<std::string> description;
  friend bool operator==(const RegisterConfig&, const RegisterConfig&) = default;
};

struct WatchConfig {
  std::filesystem::path path;             // absolute, normalised
  std::optional<std::string> project_id;  // already resolved: the watch's own or api.project_id
  std::vector<std::string> patterns = {"*.zip", "*.tar", "*.tar.gz", "*.tgz"};
  bool recursive = false;
  Duration settle = std::chrono::seconds(2);
  SuccessAction on_success = SuccessAction::move;
  FailureAction on_failure = FailureAction::move;
  std::filesystem::path done_dir;    // absolute; default <path>/done
  std::filesystem::path failed_dir;  // absolute; default <path>/failed
  // A name suffix such as ".ready": x.zip is queued once x.zip.ready exists, without a settle wait.
  std::optional<std::string> ready_marker;
  PollSetting poll;
  // This watch's API token file, as jobs.token_file records it: an absolute path, or
  // "${CREDENTIALS_DIRECTORY}/name" (a systemd LoadCredential=, resolved where the daemon runs).
  // None: the global token lookup.
  std::optional<std::string> token_file;
  preflight::ArchiveValidation validate = preflight::ArchiveValidation::archive;
  std::optional<RegisterConfig> registration;  // `register`; none: no model is registered

  // Every setting compared, so a reload notices any changed key (new ones included).
  bool operator==(const WatchConfig&) const = default;
};

// Programs run once a job has ended (argv, no shell).
struct HooksConfig {
  std::optional<std::vector<std::string>> on_success;
  std::optional<std::vector<std::string>> on_failure;  // failed and cancelled jobs
  Duration timeout = std::chrono::seconds(60);
  [[nodiscard]] bool any() const { return on_success || on_failure; }
  friend bool operator==(const HooksConfig&, const HooksConfig&) = default;
};

struct LogConfig {
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::text;
};

// Where the Prometheus endpoint listens: a host name or IPv4 address, or an IPv6 address
// (written in brackets in the config), and a port (0: any free port, for tests).
struct ListenAddress {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  [[nodiscard]] std::string text() const;  // as written: host:port or [v6]:port
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct MetricsConfig {
  std::optional<ListenAddress> listen;  // none: no metrics endpoint
};

struct Config {
  std::filesystem::path source;  // the file as named on the command line
  ApiConfig api;
  UploadConfig upload;
  RetryConfig retry;
  std::filesystem::path database = "/var/lib/modeldrop/jobs.db";
  std::vector<WatchConfig> watch;
  HooksConfig hooks;
  LogConfig log;
  MetricsConfig metrics;
};

inline constexpr const char* kDefaultConfigPath = "/etc/modeldrop/modeldrop.yaml";

// --config, else $MODELDROP_CONFIG, else the default path (docs/cli.md).
std::filesystem::path config_path_from(const std::optional<std::string>& flag);

std::string_view to_string(SuccessAction action);
std::string_view to_string(FailureAction action);

}  // namespace modeldrop::config
