#include "config/model_registration.hpp"

#include "common/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

namespace modeldrop::config {
namespace {

constexpr std::array<std::string_view, 2> kPlaceholders{"{stem}", "{date}"};
constexpr std::array<std::string_view, 3> kSidecarKeys{"name", "base_model", "description"};
// A sidecar names a model; anything this large is not one.
constexpr std::size_t kMaxSidecarBytes = 64 * 1024;

std::string utc_date(WallTime now) {
  const std::time_t seconds = WallClock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%Y%m%d", &tm);
  return text;
}

std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "\"" + node.Scalar() + "\"";
}

}  // namespace

std::optional<std::string> model_name_template_problem(std::string_view name_template) {
  if (name_template.empty()) return "must not be empty";
  if (name_template.find('/') != std::string_view::npos) return "must not contain '/'";
  for (std::size_t at = 0; at < name_template.size(); ++at) {
    if (name_template[at] == '}') return "has a '}' without its '{'";
    if (name_template[at] != '{') continue;
    const auto close = name_template.find('}', at);
    if (close == std::string_view::npos) return "has a '{' without its '}'";
    const auto placeholder = name_template.substr(at, close - at + 1);
    if (std::find(kPlaceholders.begin(), kPlaceholders.end(), placeholder) == kPlaceholders.end()) {
      return "unknown placeholder " + std::string(placeholder) + " (known: {stem}, {date})";
    }
    at = close;
  }
  return std::nullopt;
}

std::string expand_model_name(std::string_view name_template, std::string_view archive_filename, WallTime now) {
  const auto stem = archive_filename.substr(0, archive_filename.size() - archive_extension(archive_filename).size());
  std::string name;
  for (std::size_t at = 0; at < name_template.size();) {
    if (name_template.substr(at).starts_with("{stem}")) {
      name += stem;
      at += 6;
    } else if (name_template.substr(at).starts_with("{date}")) {
      name += utc_date(now);
      at += 6;
    } else {
      name += name_template[at++];
    }
  }
  return name;
}

std::filesystem::path sidecar_path_for(const std::filesystem::path& archive) {
  auto sidecar = archive;
  sidecar += ".yaml";
  return sidecar;
}

Result<Sidecar> parse_sidecar(std::string_view yaml, const std::string& display_name) {
  const auto problem = [&](const YAML::Node& node, std::string_view key, const std::string& message) {
    const int line = node.IsDefined() && node.Mark().line >= 0 ? node.Mark().line + 1 : 1;
    std::string text = "sidecar: " + display_name + ":" + std::to_string(line) + ": ";
    if (!key.empty()) text += std::string(key) + ": ";
    return make_error(text + message);
  };
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return make_error("sidecar: " + display_name + ":" + std::to_string(e.mark.line + 1) +
                      ": YAML syntax error: " + e.msg);
  }
  Sidecar sidecar;
  if (root.IsNull()) return sidecar;
  if (!root.IsMap()) return problem(root, "", "must be a mapping of name, base_model and description");
  std::set<std::string> seen;
  for (const auto& entry : root) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : std::string("?");
    if (!seen.insert(key).second) return problem(entry.first, key, "duplicate key");
    if (std::find(kSidecarKeys.begin(), kSidecarKeys.end(), key) == kSidecarKeys.end()) {
      std::string message = "unknown key";
      if (auto suggestion = closest_match(key, kSidecarKeys)) message += " (did you mean \"" + *suggestion + "\"?)";
      return problem(entry.first, key, message + "; a sidecar sets name, base_model and description");
    }
    const YAML::Node& value = entry.second;
    if (key == "description" && value.IsNull()) continue;
    if (!value.IsScalar() || value.IsNull()) return problem(value, key, "must be a string, got " + describe(value));
    const std::string text = value.Scalar();
    if (text.empty()) return problem(value, key, "must not be empty");
    if (key == "name") {
      if (auto bad = model_name_template_problem(text)) return problem(value, key, *bad);
      sidecar.name = text;
    } else if (key == "base_model") {
      sidecar.base_model = text;
    } else {
      sidecar.description = text;
    }
  }
  return sidecar;
}

Result<std::optional<Sidecar>> read_sidecar(const std::filesystem::path& archive) {
  const auto file = sidecar_path_for(archive);
  const auto failed = [&](const std::string& why) { return make_error("sidecar: " + file.string() + ": " + why); };
  // Non-blocking: a FIFO named like a sidecar must not hang the reader.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Sidecar>{};
    return failed(errno == ELOOP ? "is a symbolic link" : std::strerror(errno));
  }
  struct stat info {};
  std::string text;
  std::string problem;
  if (::fstat(fd, &info) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(info.st_mode)) {
    problem = "not a regular file";
  } else if (static_cast<std::uint64_t>(info.st_size) > kMaxSidecarBytes) {
    problem = "larger than 64 KiB";
  } else {
    text.resize(static_cast<std::size_t>(info.st_size));
    std::size_t done = 0;
    while (done < text.size()) {
      const auto got = ::read(fd, text.data() + done, text.size() - done);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) problem = std::strerror(errno);
      if (got <= 0) break;
      done += static_cast<std::size_t>(got);
    }
    text.resize(done);
  }
  ::close(fd);
  if (!problem.empty()) return failed(problem);
  auto sidecar = parse_sidecar(text, file.string());
  if (!sidecar) return sidecar.error();
  return std::optional<Sidecar>(std::move(*sidecar));
}

Result<RegisterConfig> resolve_registration(const RegisterConfig& base, const std::optional<Sidecar>& sidecar,
                                            const std::filesystem::path& archive, WallTime now) {
  RegisterConfig resolved = base;
  if (sidecar) {
    if (sidecar->name) resolved.name = *sidecar->name;
    if (sidecar->base_model) resolved.base_model = *sidecar->base_model;
    if (sidecar->description) resolved.description = sidecar->description;
  }
  if (resolved.base_model.empty()) {
    return make_error("sidecar: " + sidecar_path_for(archive).string() + ": no base_model for the model");
  }
  resolved.name = expand_model_name(resolved.name, archive.filename().string(), now);
  return resolved;
}

ArchiveRegistration registration_for_archive(const std::filesystem::path& archive,
                                             const std::optional<RegisterConfig>& base, WallTime now) {
  ArchiveRegistration result;
  if (!base) return result;
  auto sidecar = read_sidecar(archive);
  if (!sidecar) {
    // It is there, but cannot be used: it still goes where its archive goes.
    result.sidecar = sidecar_path_for(archive);
    result.problem = sidecar.error().message;
    return result;
  }
  if (*sidecar) result.sidecar = sidecar_path_for(archive);
  auto model = resolve_registration(*base, *sidecar, archive, now);
  if (!model) {
    result.problem = model.error().message;
    return result;
  }
  result.model = std::move(*model);
  return result;
}

}  // namespace modeldrop::config
