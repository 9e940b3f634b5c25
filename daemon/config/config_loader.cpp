#include "config/config_loader.hpp"

#include "common/text.hpp"
#include "config/model_registration.hpp"
#include "config/token.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>
#include <boost/url/parse.hpp>

#include <array>
#include <charconv>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace modeldrop::config {
namespace {

namespace fs = std::filesystem;

constexpr std::array<std::string_view, 8> kTopKeys{"api",   "upload", "retry", "database",
                                                   "watch", "hooks",  "log",   "metrics"};
constexpr std::array<std::string_view, 3> kHooksKeys{"on_success", "on_failure", "timeout"};
constexpr std::array<std::string_view, 7> kApiKeys{"base_url", "token_file",      "project_id",  "ca_file",
                                                   "proxy",    "connect_timeout", "idle_timeout"};
constexpr std::array<std::string_view, 3> kUploadKeys{"sessions", "max_bytes_per_second", "dedupe"};
constexpr std::array<std::string_view, 4> kRetryKeys{"initial_backoff", "max_backoff", "max_attempts", "give_up_after"};
constexpr std::array<std::string_view, 14> kWatchKeys{
    "path",     "project_id", "patterns",     "recursive", "settle",   "on_success", "on_failure",
    "done_dir", "failed_dir", "ready_marker", "poll",      "validate", "register",   "token_file"};
constexpr std::array<std::string_view, 3> kRegisterKeys{"base_model", "name", "description"};
constexpr std::array<std::string_view, 2> kLogKeys{"level", "format"};
constexpr std::array<std::string_view, 1> kMetricsKeys{"listen"};

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// "host:port" or "[v6]:port"; an IPv6 address without brackets is ambiguous and refused.
std::optional<ListenAddress> parse_listen(std::string_view text) {
  ListenAddress address;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    const std::string host(text.substr(1, close - 1));
    in6_addr parsed{};
    if (::inet_pton(AF_INET6, host.c_str(), &parsed) != 1) return std::nullopt;
    address.host = host;
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || text.substr(0, colon).find(':') != std::string_view::npos) {
      return std::nullopt;
    }
    address.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  auto number = parse_port(port);
  if (!number) return std::nullopt;
  address.port = *number;
  return address;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  // 127.0.0.0/8 written as a dotted quad.
  if (host.substr(0, 4) != "127.") return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

// Boost.URL 1.81 reads "http://127.0.0.1.evil.com" as host 127.0.0.1 with path ".evil.com";
// RFC 3986 says a path after an authority is empty or starts with '/', so refuse the rest.
bool path_follows_authority(const boost::urls::url_view& url) {
  const auto path = url.encoded_path();
  return path.empty() || path.front() == '/';
}

// Walks the YAML tree, collecting every problem instead of stopping at the first.
class ConfigReader {
 public:
  ConfigReader(std::string display_name, fs::path base_dir)
      : display_name_(std::move(display_name)), base_dir_(std::move(base_dir)) {}

  LoadResult read(std::string_view text) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      problems_.push_back(display_name_ + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
      return finish();
    }
    Config config;
    config.source = display_name_;
    if (root.IsNull()) {
      config.watch.push_back(default_watch(config.api.project_id));
      return finish(std::move(config));
    }
    if (!root.IsMap()) {
      report(root, "(top level)", "must be a mapping of keys such as api, upload, watch");
      return finish();
    }
    check_keys(root, "", kTopKeys);
    read_api(root["api"], config.api);
    read_upload(root["upload"], config.upload);
    read_retry(root["retry"], config.retry);
    if (auto db = read_path(root["database"], "database", false)) config.database = *db;
    read_watches(root, config);
    read_hooks(root["hooks"], config.hooks);
    read_log(root["log"], config.log);
    read_metrics(root["metrics"], config.metrics);
    return finish(std::move(config));
  }

 private:
  LoadResult finish(std::optional<Config> config = std::nullopt) {
    LoadResult result;
    result.problems = std::move(problems_);
    if (result.problems.empty()) result.config = std::move(config);
    return result;
  }

  void report(const YAML::Node& node, const std::string& key_path, const std::string& message) {
    const int line = node.IsDefined() && node.Mark().line >= 0 ? node.Mark().line + 1 : last_line_;
    problems_.push_back(display_name_ + ":" + std::to_string(line) + ": " + key_path + ": " + message);
  }

  static std::string join(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  }

  static std::string describe(const YAML::Node& node) {
    if (node.IsNull()) return "null";
    if (node.IsSequence()) return node.size() == 0 ? "an empty list" : "a list";
    if (node.IsMap()) return "a mapping";
    return "\"" + node.Scalar() + "\"";
  }

  // Unknown and duplicate keys. Also remembers the map's line for problems on absent keys.
  template <std::size_t N>
  void check_keys(const YAML::Node& map, const std::string& path, const std::array<std::string_view, N>& allowed) {
    if (map.Mark().line >= 0) last_line_ = map.Mark().line + 1;
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const auto& key_node = entry.first;
      const std::string key = key_node.IsScalar() ? key_node.Scalar() : std::string("?");
      const std::string key_path = join(path, key);
      if (!seen.insert(key).second) {
        report(key_node, key_path, "duplicate key");
        continue;
      }
      bool known = false;
      for (auto candidate : allowed) known = known || candidate == key;
      if (known) continue;
      std::string message = "unknown key";
      if (auto suggestion = closest_match(key, std::span<const std::string_view>(allowed.data(), allowed.size()))) {
        message += " (did you mean \"" + *suggestion + "\"?)";
      }
      report(key_node, key_path, message);
    }
  }

  // A section that is absent or null keeps its defaults; anything but a mapping is a problem.
  bool section(const YAML::Node& node, const std::string& path) {
    if (!node.IsDefined() || node.IsNull()) return false;
    if (!node.IsMap()) {
      report(node, path, "must be a mapping, got " + describe(node));
      return false;
    }
    return true;
  }

  // A plain (unquoted) or quoted scalar's text; nullopt (with a problem) for lists and mappings.
  std::optional<std::string> scalar(const YAML::Node& node, const std::string& path, std::string_view expected) {
    if (!node.IsScalar()) {
      report(node, path, "must be " + std::string(expected) + ", got " + describe(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  static bool is_quoted(const YAML::Node& node) { return node.Tag() == "!"; }

  std::optional<std::string> read_string(const YAML::Node& node, const std::string& path, bool nullable) {
    if (!node.IsDefined()) return std::nullopt;
    if (node.IsNull()) {
      if (!nullable) report(node, path, "must be a string, got null");
      return std::nullopt;
    }
    auto text = scalar(node, path, "a string");
    if (text && text->empty()) {
      report(node, path, "must not be empty");
      return std::nullopt;
    }
    return text;
  }

  std::optional<fs::path> read_path(const YAML::Node& node, const std::string& path, bool nullable) {
    auto text = read_string(node, path, nullable);
    if (!text) return std::nullopt;
    return config_path(*text);
  }

  // A path as the config means it: relative ones from the file's directory, normalised.
  fs::path config_path(const std::string& text) const {
    fs::path p(text);
    if (p.is_relative()) p = base_dir_ / p;
    p = p.lexically_normal();
    if (p.has_relative_path() && !p.has_filename()) p = p.parent_path();  // no trailing slash
    return p;
  }

  std::optional<long long> read_int(const YAML::Node& node, const std::string& path, long long min, long long max) {
    if (!node.IsDefined()) return std::nullopt;
    const std::string range = "between " + std::to_string(min) + " and " + std::to_string(max);
    auto text = node.IsNull() ? std::nullopt : scalar(node, path, "an integer");
    if (node.IsNull()) report(node, path, "must be an integer " + range + ", got null");
    if (!text) return std::nullopt;
    long long value = 0;
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (is_quoted(node) || ec != std::errc{} || ptr != text->data() + text->size()) {
      report(node, path, "must be an integer " + range + ", got " + describe(node));
      return std::nullopt;
    }
    if (value < min || value > max) {
      report(node, path, "must be " + range + ", got " + *text);
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> read_bool(const YAML::Node& node, const std::string& path) {
    if (!node.IsDefined()) return std::nullopt;
    auto text = node.IsNull() ? std::nullopt : scalar(node, path, "true or false");
    if (node.IsNull()) report(node, path, "must be true or false, got null");
    if (!text) return std::nullopt;
    if (!is_quoted(node) && (*text == "true" || *text == "True" || *text == "TRUE")) return true;
    if (!is_quoted(node) && (*text == "false" || *text == "False" || *text == "FALSE")) return false;
    report(node, path, "must be true or false, got " + describe(node));
    return std::nullopt;
  }

  std::optional<Duration> read_duration(const YAML::Node& node, const std::string& path, Duration min) {
    if (!node.IsDefined()) return std::nullopt;
    auto text = node.IsNull() ? std::nullopt : scalar(node, path, "a duration such as 2s");
    if (node.IsNull()) report(node, path, "must be a duration such as 2s, got null");
    if (!text) return std::nullopt;
    auto parsed = parse_duration(*text);
    if (!parsed) {
      report(node, path, parsed.error().message);
      return std::nullopt;
    }
    if (*parsed < min) {
      report(node, path, "must be at least " + format_duration(min) + ", got " + *text);
      return std::nullopt;
    }
    return *parsed;
  }

  std::optional<std::uint64_t> read_size(const YAML::Node& node, const std::string& path) {
    if (!node.IsDefined()) return std::nullopt;
    auto text = node.IsNull() ? std::nullopt : scalar(node, path, "a size such as 10MiB");
    if (node.IsNull()) report(node, path, "must be a size such as 10MiB or 0, got null");
    if (!text) return std::nullopt;
    if (!text->empty() && text->front() == '-') {
      report(node, path, "must not be negative, got " + *text);
      return std::nullopt;
    }
    auto parsed = parse_size(*text);
    if (!parsed) {
      report(node, path, parsed.error().message);
      return std::nullopt;
    }
    return *parsed;
  }

  template <class Enum, std::size_t N>
  std::optional<Enum> read_enum(const YAML::Node& node, const std::string& path,
                                const std::array<std::pair<std::string_view, Enum>, N>& choices) {
    if (!node.IsDefined()) return std::nullopt;
    std::string names;
    for (const auto& [name, value] : choices) names += (names.empty() ? "" : ", ") + std::string(name);
    auto text = node.IsNull() ? std::nullopt : scalar(node, path, "one of " + names);
    if (node.IsNull()) report(node, path, "must be one of " + names + ", got null");
    if (!text) return std::nullopt;
    for (const auto& [name, value] : choices) {
      if (*text == name) return value;
    }
    report(node, path, "must be one of " + names + ", got " + describe(node));
    return std::nullopt;
  }

  void read_base_url(const YAML::Node& node, ApiConfig& api) {
    auto text = read_string(node, "api.base_url", false);
    if (!text) return;
    auto url = boost::urls::parse_absolute_uri(*text);
    if (!url || !url->has_authority() || url->host().empty() || !path_follows_authority(*url)) {
      report(node, "api.base_url",
             "must be an absolute URL such as https://api.tokenfactory.nebius.com, got " + describe(node));
      return;
    }
    if (url->has_query() || url->has_fragment() || url->has_userinfo()) {
      report(node, "api.base_url", "must not contain a query, fragment or user name, got " + describe(node));
      return;
    }
    const std::string scheme = ascii_lower(url->scheme());
    if (scheme != "https" && !(scheme == "http" && is_loopback_host(url->host()))) {
      report(node, "api.base_url",
             "must use https (plain http is allowed only for a loopback host), got " + describe(node));
      return;
    }
    std::string normalised = *text;
    while (!normalised.empty() && normalised.back() == '/') normalised.pop_back();
    api.base_url = normalised;
  }

  void read_proxy(const YAML::Node& node, ApiConfig& api) {
    auto text = read_string(node, "api.proxy", true);
    if (!text) return;
    auto url = boost::urls::parse_absolute_uri(*text);
    if (!url || !path_follows_authority(*url) || ascii_lower(url->scheme()) != "http" || url->host().empty() ||
        !url->has_port() || (!url->path().empty() && url->path() != "/")) {
      report(node, "api.proxy", "must be http://host:port, got " + describe(node));
      return;
    }
    api.proxy = *text;
  }

  void read_api(const YAML::Node& node, ApiConfig& api) {
    if (!section(node, "api")) return;
    check_keys(node, "api", kApiKeys);
    read_base_url(node["base_url"], api);
    if (const YAML::Node file = node["token_file"];
        file.IsDefined() && file.IsScalar() && file.Scalar().find("${") != std::string::npos) {
      // The global lookup reads $CREDENTIALS_DIRECTORY/api-token by itself; a variable here would
      // otherwise be taken literally and fail later with a puzzling path.
      report(node["token_file"], "api.token_file",
             "variables are not expanded here (the lookup already reads $CREDENTIALS_DIRECTORY/api-token), got " +
                 describe(node["token_file"]));
    } else {
      api.token_file = read_path(node["token_file"], "api.token_file", true);
    }
    api.project_id = read_string(node["project_id"], "api.project_id", true);
    api.ca_file = read_path(node["ca_file"], "api.ca_file", true);
    read_proxy(node["proxy"], api);
    const Duration one_ms{1};
    if (auto d = read_duration(node["connect_timeout"], "api.connect_timeout", one_ms)) api.connect_timeout = *d;
    if (auto d = read_duration(node["idle_timeout"], "api.idle_timeout", one_ms)) api.idle_timeout = *d;
  }

  void read_upload(const YAML::Node& node, UploadConfig& upload) {
    if (!section(node, "upload")) return;
    check_keys(node, "upload", kUploadKeys);
    if (auto n = read_int(node["sessions"], "upload.sessions", 1, 256)) upload.sessions = static_cast<int>(*n);
    if (auto n = read_size(node["max_bytes_per_second"], "upload.max_bytes_per_second")) {
      upload.max_bytes_per_second = *n;
    }
    if (auto b = read_bool(node["dedupe"], "upload.dedupe")) upload.dedupe = *b;
  }

  void read_retry(const YAML::Node& node, RetryConfig& retry) {
    if (!section(node, "retry")) return;
    check_keys(node, "retry", kRetryKeys);
    if (auto d = read_duration(node["initial_backoff"], "retry.initial_backoff", Duration{1})) {
      retry.initial_backoff = *d;
    }
    if (auto d = read_duration(node["max_backoff"], "retry.max_backoff", Duration{1})) retry.max_backoff = *d;
    if (retry.max_backoff < retry.initial_backoff) {
      report(node["max_backoff"].IsDefined() ? node["max_backoff"] : node, "retry.max_backoff",
             "must not be shorter than retry.initial_backoff (" + format_duration(retry.initial_backoff) + ")");
    }
    if (auto n = read_int(node["max_attempts"], "retry.max_attempts", 0, 1'000'000)) {
      retry.max_attempts = static_cast<int>(*n);
    }
    if (auto d = read_duration(node["give_up_after"], "retry.give_up_after", Duration{0})) retry.give_up_after = *d;
  }

  void read_hooks(const YAML::Node& node, HooksConfig& hooks) {
    if (!section(node, "hooks")) return;
    check_keys(node, "hooks", kHooksKeys);
    hooks.on_success = read_argv(node["on_success"], "hooks.on_success");
    hooks.on_failure = read_argv(node["on_failure"], "hooks.on_failure");
    if (auto d = read_duration(node["timeout"], "hooks.timeout", Duration{1})) hooks.timeout = *d;
  }

  // A program and its arguments, run without a shell; null: none.
  std::optional<std::vector<std::string>> read_argv(const YAML::Node& node, const std::string& path) {
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!node.IsSequence() || node.size() == 0) {
      report(node, path,
             "must be a list such as [\"/usr/local/bin/notify\", \"--ok\"] (no shell), got " + describe(node));
      return std::nullopt;
    }
    std::vector<std::string> argv;
    for (std::size_t i = 0; i < node.size(); ++i) {
      auto item = read_string(node[i], path + "[" + std::to_string(i) + "]", false);
      if (!item) return std::nullopt;
      argv.push_back(std::move(*item));
    }
    return argv;
  }

  void read_log(const YAML::Node& node, LogConfig& log) {
    if (!section(node, "log")) return;
    check_keys(node, "log", kLogKeys);
    constexpr std::array<std::pair<std::string_view, LogLevel>, 5> kLevels{{{"trace", LogLevel::trace},
                                                                            {"debug", LogLevel::debug},
                                                                            {"info", LogLevel::info},
                                                                            {"warn", LogLevel::warn},
                                                                            {"error", LogLevel::error}}};
    constexpr std::array<std::pair<std::string_view, LogFormat>, 2> kFormats{
        {{"text", LogFormat::text}, {"json", LogFormat::json}}};
    if (auto v = read_enum(node["level"], "log.level", kLevels)) log.level = *v;
    if (auto v = read_enum(node["format"], "log.format", kFormats)) log.format = *v;
  }

  void read_metrics(const YAML::Node& node, MetricsConfig& metrics) {
    if (!section(node, "metrics")) return;
    check_keys(node, "metrics", kMetricsKeys);
    auto text = read_string(node["listen"], "metrics.listen", true);
    if (!text) return;
    metrics.listen = parse_listen(*text);
    if (!metrics.listen) {
      report(node["listen"], "metrics.listen",
             "must be host:port or [IPv6 address]:port, got " + describe(node["listen"]));
    }
  }

  static WatchConfig default_watch(const std::optional<std::string>& api_project) {
    WatchConfig watch;
    watch.path = "/var/spool/modeldrop/incoming";
    watch.project_id = api_project;
    watch.done_dir = watch.path / "done";
    watch.failed_dir = watch.path / "failed";
    return watch;
  }

  void read_watches(const YAML::Node& root, Config& config) {
    const YAML::Node node = root["watch"];
    if (!node.IsDefined()) {
      config.watch.push_back(default_watch(config.api.project_id));
      return;
    }
    if (!node.IsSequence() || node.size() == 0) {
      report(node, "watch", "must be a list of one or more watch entries, got " + describe(node));
      return;
    }
    std::set<fs::path> seen;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string path = "watch[" + std::to_string(i) + "]";
      const YAML::Node entry = node[i];
      if (!entry.IsMap()) {
        report(entry, path, "must be a mapping with at least a path, got " + describe(entry));
        continue;
      }
      auto watch = read_watch(entry, path, config.api.project_id);
      if (!watch) continue;
      if (!seen.insert(watch->path).second) {
        report(entry["path"], path + ".path", "duplicate watch path " + watch->path.string());
        continue;
      }
      config.watch.push_back(std::move(*watch));
    }
  }

  std::optional<WatchConfig> read_watch(const YAML::Node& entry, const std::string& path,
                                        const std::optional<std::string>& api_project) {
    check_keys(entry, path, kWatchKeys);
    WatchConfig watch;
    const YAML::Node path_node = entry["path"];
    if (!path_node.IsDefined()) {
      report(entry, path + ".path", "required");
    }
    auto dir = read_path(path_node, path + ".path", false);
    const bool project_given = entry["project_id"].IsDefined() && !entry["project_id"].IsNull();
    auto project = read_string(entry["project_id"], path + ".project_id", true);
    watch.project_id = project_given ? project : api_project;
    if (const YAML::Node patterns = entry["patterns"]; patterns.IsDefined()) {
      if (!patterns.IsSequence() || patterns.size() == 0) {
        report(patterns, path + ".patterns", "must be a list of one or more name patterns, got " + describe(patterns));
      } else {
        watch.patterns.clear();
        for (std::size_t i = 0; i < patterns.size(); ++i) {
          const std::string item_path = path + ".patterns[" + std::to_string(i) + "]";
          if (auto glob = read_string(patterns[i], item_path, false)) {
            if (glob->find('/') != std::string::npos) {
              report(patterns[i], item_path, "must not contain '/' (patterns match file names only)");
            } else {
              watch.patterns.push_back(*glob);
            }
          }
        }
      }
    }
    if (auto b = read_bool(entry["recursive"], path + ".recursive")) watch.recursive = *b;
    if (auto d = read_duration(entry["settle"], path + ".settle", Duration{0})) watch.settle = *d;
    constexpr std::array<std::pair<std::string_view, SuccessAction>, 3> kSuccess{
        {{"move", SuccessAction::move}, {"keep", SuccessAction::keep}, {"delete", SuccessAction::remove}}};
    constexpr std::array<std::pair<std::string_view, FailureAction>, 2> kFailure{
        {{"move", FailureAction::move}, {"keep", FailureAction::keep}}};
    if (auto v = read_enum(entry["on_success"], path + ".on_success", kSuccess)) watch.on_success = *v;
    if (auto v = read_enum(entry["on_failure"], path + ".on_failure", kFailure)) watch.on_failure = *v;
    constexpr std::array<std::pair<std::string_view, preflight::ArchiveValidation>, 3> kValidate{
        {{"archive", preflight::ArchiveValidation::archive},
         {"adapter", preflight::ArchiveValidation::adapter},
         {"none", preflight::ArchiveValidation::none}}};
    if (auto v = read_enum(entry["validate"], path + ".validate", kValidate)) watch.validate = *v;
    auto done = read_path(entry["done_dir"], path + ".done_dir", true);
    auto failed = read_path(entry["failed_dir"], path + ".failed_dir", true);
    if (!dir) return std::nullopt;
    watch.path = *dir;
    watch.done_dir = done ? *done : watch.path / "done";
    watch.failed_dir = failed ? *failed : watch.path / "failed";
    if (watch.done_dir == watch.path)
      report(entry["done_dir"], path + ".done_dir", "must not be the watch directory itself");
    if (watch.failed_dir == watch.path) {
      report(entry["failed_dir"], path + ".failed_dir", "must not be the watch directory itself");
    }
    read_operations_keys(entry, path, watch);
    read_registration(entry["register"], path + ".register", watch);
    return watch;
  }

  // `register`: null, or {base_model, name, description}; base_model is required.
  void read_registration(const YAML::Node& node, const std::string& path, WatchConfig& watch) {
    if (!section(node, path)) return;
    check_keys(node, path, kRegisterKeys);
    RegisterConfig registration;
    if (!node["base_model"].IsDefined()) report(node, path + ".base_model", "required");
    auto base_model = read_string(node["base_model"], path + ".base_model", false);
    if (auto name = read_string(node["name"], path + ".name", false)) {
      if (auto problem = model_name_template_problem(*name)) {
        report(node["name"], path + ".name", *problem);
      } else {
        registration.name = *name;
      }
    }
    registration.description = read_string(node["description"], path + ".description", true);
    if (!base_model) return;
    registration.base_model = *base_model;
    watch.registration = std::move(registration);
  }

  // A watch's token_file: a path (relative ones from the config's directory), or a name below
  // systemd's credentials directory, "${CREDENTIALS_DIRECTORY}/name", the one variable expanded
  // (when the daemon reads it, so --check-config outside the service still passes).
  std::optional<std::string> read_token_file_name(const YAML::Node& node, const std::string& path) {
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    auto text = read_string(node, path, true);
    if (!text) return std::nullopt;
    if (text->find("${") == std::string::npos) return config_path(*text).string();
    const std::string_view prefix = kCredentialsDirectoryPrefix;
    const fs::path name =
        text->starts_with(prefix) ? fs::path(text->substr(prefix.size())).lexically_normal() : fs::path();
    const std::string first = name.empty() ? std::string() : name.begin()->string();
    if (name.empty() || name.is_absolute() || first == ".." || first == "." || !name.has_filename() ||
        name.string().find("${") != std::string::npos) {
      report(node, path,
             "only ${CREDENTIALS_DIRECTORY} is expanded, at the start and followed by a file name "
             "(\"${CREDENTIALS_DIRECTORY}/api-token-teamb\"), got " +
                 describe(node));
      return std::nullopt;
    }
    return std::string(prefix) + name.string();
  }

  // The per-watch keys for running on shared and networked storage.
  void read_operations_keys(const YAML::Node& entry, const std::string& path, WatchConfig& watch) {
    watch.token_file = read_token_file_name(entry["token_file"], path + ".token_file");
    if (auto marker = read_string(entry["ready_marker"], path + ".ready_marker", true)) {
      if (marker->empty() || marker->find('/') != std::string::npos || *marker == "." || *marker == "..") {
        report(entry["ready_marker"], path + ".ready_marker",
               "must be a file name suffix such as .ready, got " + describe(entry["ready_marker"]));
      } else {
        watch.ready_marker = *marker;
      }
    }
    if (const YAML::Node poll = entry["poll"]; poll.IsDefined()) {
      const auto text = poll.IsScalar() && !poll.IsNull() ? std::optional<std::string>(poll.Scalar()) : std::nullopt;
      if (text == "auto") {
        watch.poll = {};
      } else if (text == "off") {
        watch.poll.kind = PollSetting::Kind::off;
      } else if (auto interval = parse_duration(text.value_or("")); !text || !interval) {
        report(poll, path + ".poll", "must be auto, off or a duration such as 30s, got " + describe(poll));
      } else if (*interval < std::chrono::milliseconds(100)) {
        report(poll, path + ".poll", "must be at least 100ms, got " + *text);
      } else {
        watch.poll = {PollSetting::Kind::every, *interval};
      }
    }
  }

  std::string display_name_;
  fs::path base_dir_;
  std::vector<std::string> problems_;
  int last_line_ = 1;
};

}  // namespace

LoadResult parse_config(std::string_view yaml, const std::string& display_name, const fs::path& base_dir) {
  return ConfigReader(display_name, base_dir).read(yaml);
}

LoadResult load_config(const fs::path& file) {
  const auto unreadable = [&](const std::string& why) {
    LoadResult result;
    result.problems.push_back(file.string() + ": cannot read the configuration file: " + why);
    return result;
  };
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (ec || !fs::exists(status)) return unreadable("no such file");
  if (!fs::is_regular_file(status)) return unreadable("not a regular file");
  std::ifstream in(file, std::ios::binary);
  if (!in) return unreadable("permission denied");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return unreadable("read error");
  const fs::path absolute = fs::absolute(file, ec);
  return parse_config(text.str(), file.string(), ec ? fs::path(".") : absolute.parent_path());
}

fs::path config_path_from(const std::optional<std::string>& flag) {
  if (flag && !flag->empty()) return *flag;
  if (const char* env = std::getenv("MODELDROP_CONFIG"); env != nullptr && *env != '\0') return env;
  return kDefaultConfigPath;
}

std::string ListenAddress::text() const {
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return shown + ":" + std::to_string(port);
}

std::string_view to_string(SuccessAction action) {
  switch (action) {
    case SuccessAction::move:
      return "move";
    case SuccessAction::keep:
      return "keep";
    case SuccessAction::remove:
      return "delete";
  }
  return "move";
}

std::string_view to_string(FailureAction action) {
  return action == FailureAction::move ? "move" : "keep";
}

}  // namespace modeldrop::config
