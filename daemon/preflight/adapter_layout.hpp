#pragma once

// The `adapter` check: adapter_config.json (valid JSON) and adapter_model.safetensors (a valid
// header whose tensors lie inside the file), both at the top level or both in one top-level
// folder. Members stream past once, so every candidate is judged as it goes and the layout at
// the end picks which judgements count.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::preflight {

class AdapterLayout {
 public:
  // Called for every member, before its data. Returns true if the member's data is wanted.
  bool begin_member(std::string_view path, bool regular_file);
  void member_data(std::span<const std::byte> bytes);
  void end_member();

  // The problem with the archive as an adapter, if any.
  [[nodiscard]] std::optional<std::string> verdict() const;

 private:
  struct Place {
    std::optional<std::optional<std::string>> config;  // seen, and its problem if any
    std::optional<std::optional<std::string>> weights;
  };
  enum class Wanted { none, config, weights };

  [[nodiscard]] std::size_t keep_limit() const;

  std::map<std::string, Place> places_;  // "" for the top level, else the folder's name
  Wanted wanted_ = Wanted::none;
  std::string place_;
  std::vector<std::byte> kept_;
  std::uint64_t member_size_ = 0;
};

}  // namespace modeldrop::preflight
