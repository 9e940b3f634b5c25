#pragma once

// What model an archive registers: the watch's `register` (or `modeldrop add
// --register-base-model`), overridden by a sidecar `<archive name>.yaml` beside the archive,
// with the name template expanded (docs/configuration.md "register").

#include "common/error.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::config {

// Why a model name template cannot be used (an unknown {placeholder}, an unclosed brace, a
// '/'), or none when it can.
std::optional<std::string> model_name_template_problem(std::string_view name_template);

// {stem}: the archive's file name without its archive extension (lora.tar.gz -> lora);
// {date}: `now`'s UTC date as YYYYMMDD. The template is assumed valid.
std::string expand_model_name(std::string_view name_template, std::string_view archive_filename, WallTime now);

// The settings one sidecar gives; a key it does not set keeps the watch's value.
struct Sidecar {
  std::optional<std::string> name;  // a template, like `register.name`
  std::optional<std::string> base_model;
  std::optional<std::string> description;
};

// "<archive>.yaml": lora.zip's sidecar is lora.zip.yaml.
std::filesystem::path sidecar_path_for(const std::filesystem::path& archive);

// The sidecar text's settings, or its first problem as "sidecar: <file>:<line>: <key>: <message>"
// (`display_name` is the file as the message shows it). Empty text sets nothing.
Result<Sidecar> parse_sidecar(std::string_view yaml, const std::string& display_name);

// The sidecar beside `archive`: none when there is no such file; an error (with the prefix
// "sidecar: ") when it cannot be read or parsed.
Result<std::optional<Sidecar>> read_sidecar(const std::filesystem::path& archive);

// The model `archive_filename` registers: `base` with the sidecar's keys over it, the name
// expanded. A sidecar that leaves the base model empty is refused (an error naming the file).
Result<RegisterConfig> resolve_registration(const RegisterConfig& base, const std::optional<Sidecar>& sidecar,
                                            const std::filesystem::path& archive, WallTime now);

// What an archive queued from a registering watch gets: the model (name expanded) and the
// sidecar read for it, or, for a broken sidecar, the problem its job fails with.
struct ArchiveRegistration {
  std::optional<RegisterConfig> model;
  std::optional<std::filesystem::path> sidecar;  // the sidecar beside the archive, when there is one
  std::optional<std::string> problem;            // "sidecar: <file>:<line>: ..."
};
// Reads the sidecar (a small file; never on the event loop). Nothing when `base` is none: a
// watch that registers nothing reads no sidecar.
ArchiveRegistration registration_for_archive(const std::filesystem::path& archive,
                                             const std::optional<RegisterConfig>& base, WallTime now);

}  // namespace modeldrop::config
