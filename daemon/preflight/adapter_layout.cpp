#include "preflight/adapter_layout.hpp"

#include "common/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace modeldrop::preflight {

namespace {

constexpr std::string_view config_name = "adapter_config.json";
constexpr std::string_view weights_name = "adapter_model.safetensors";

// An adapter's config is a few KiB and a safetensors header a few hundred bytes per tensor:
// these caps are far above both and keep a hostile member from costing memory.
constexpr std::size_t max_config_bytes = 1024 * 1024;
constexpr std::size_t max_header_bytes = 16 * 1024 * 1024;

std::string quoted(std::string_view text) {
  return "\"" + one_printable_line(text, Tabs::escape) + "\"";
}

// "./a/b" -> {"a", "b"}; empty components dropped.
std::vector<std::string_view> components_of(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const auto part = path.substr(0, slash);
    if (!part.empty() && part != ".") parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::optional<std::string> json_problem(std::string_view text) {
  boost::system::error_code error;
  auto value = boost::json::parse(text, error);
  if (error) return "not valid JSON";
  if (!value.is_object()) return "not a JSON object";
  return std::nullopt;
}

std::optional<std::string> tensor_problem(std::string_view name, const boost::json::value& tensor,
                                          std::uint64_t data_size) {
  const auto* fields = tensor.if_object();
  const auto* offsets = fields != nullptr ? fields->if_contains("data_offsets") : nullptr;
  const auto* pair = offsets != nullptr ? offsets->if_array() : nullptr;
  if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_number() || !(*pair)[1].is_number()) {
    return "tensor " + quoted(name) + " has no valid data_offsets";
  }
  boost::system::error_code error;
  const auto begin = (*pair)[0].to_number<std::uint64_t>(error);
  const auto end = error ? 0 : (*pair)[1].to_number<std::uint64_t>(error);
  if (error || begin > end || end > data_size) return "tensor " + quoted(name) + " lies outside the file";
  return std::nullopt;
}

// 8-byte little-endian header length, that much JSON, then the tensors' data.
std::optional<std::string> safetensors_problem(const std::vector<std::byte>& kept, std::uint64_t size) {
  if (size < 8) return "truncated safetensors header";
  std::uint64_t header_size = 0;
  for (std::size_t i = 0; i < 8; ++i) header_size |= std::to_integer<std::uint64_t>(kept[i]) << (8 * i);
  if (header_size > max_header_bytes) return "safetensors header larger than 16 MiB";
  if (header_size > size - 8) return "truncated safetensors header";
  const std::string_view text(reinterpret_cast<const char*>(kept.data()) + 8, header_size);
  boost::system::error_code error;
  auto header = boost::json::parse(text, error);
  if (error || !header.is_object()) return "safetensors header is not a JSON object";
  for (const auto& [name, tensor] : header.as_object()) {
    if (name == "__metadata__") continue;
    if (auto problem = tensor_problem(name, tensor, size - 8 - header_size)) return problem;
  }
  return std::nullopt;
}

}  // namespace

bool AdapterLayout::begin_member(std::string_view path, bool regular_file) {
  wanted_ = Wanted::none;
  const auto parts = components_of(path);
  if (parts.empty() || parts.size() > 2) return false;
  place_ = parts.size() == 2 ? std::string(parts[0]) : std::string();
  if (!regular_file) return false;
  if (parts.back() == config_name) wanted_ = Wanted::config;
  if (parts.back() == weights_name) wanted_ = Wanted::weights;
  kept_.clear();
  member_size_ = 0;
  return wanted_ != Wanted::none;
}

void AdapterLayout::member_data(std::span<const std::byte> bytes) {
  if (wanted_ == Wanted::none) return;
  member_size_ += bytes.size();
  while (!bytes.empty()) {
    const std::size_t limit = keep_limit();
    if (kept_.size() >= limit) return;
    const std::size_t take = std::min(limit - kept_.size(), bytes.size());
    kept_.insert(kept_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    bytes = bytes.subspan(take);
  }
}

// A config one byte over its cap is kept, to tell it is too big; a safetensors file is kept up
// to the end of the header its first 8 bytes announce.
std::size_t AdapterLayout::keep_limit() const {
  if (wanted_ == Wanted::config) return max_config_bytes + 1;
  if (kept_.size() < 8) return 8;
  std::uint64_t header_size = 0;
  for (std::size_t i = 0; i < 8; ++i) header_size |= std::to_integer<std::uint64_t>(kept_[i]) << (8 * i);
  return 8 + std::min<std::uint64_t>(header_size, max_header_bytes);
}

void AdapterLayout::end_member() {
  if (wanted_ == Wanted::none) return;
  Place& place = places_[place_];
  const std::string folder = place_.empty() ? std::string() : one_printable_line(place_, Tabs::escape) + "/";
  if (wanted_ == Wanted::config) {
    const std::string_view text(reinterpret_cast<const char*>(kept_.data()), kept_.size());
    auto problem =
        kept_.size() > max_config_bytes ? std::optional<std::string>("larger than 1 MiB") : json_problem(text);
    if (problem) problem = folder + std::string(config_name) + " is " + *problem;
    place.config = problem;
  } else {
    auto problem = safetensors_problem(kept_, member_size_);
    if (problem) problem = folder + std::string(weights_name) + ": " + *problem;
    place.weights = problem;
  }
  wanted_ = Wanted::none;
  kept_.clear();
  kept_.shrink_to_fit();
}

std::optional<std::string> AdapterLayout::verdict() const {
  const auto complete = [](const Place& place) { return place.config.has_value() && place.weights.has_value(); };
  const auto judged = [](const Place& place) -> std::optional<std::string> {
    if (*place.config) return *place.config;
    return *place.weights;
  };
  if (auto top = places_.find(""); top != places_.end() && complete(top->second)) return judged(top->second);
  std::vector<const std::pair<const std::string, Place>*> folders;
  for (const auto& entry : places_) {
    if (!entry.first.empty() && complete(entry.second)) folders.push_back(&entry);
  }
  if (folders.size() == 1) return judged(folders.front()->second);
  if (folders.size() > 1) {
    return "adapter files in more than one folder (" + quoted(folders[0]->first) + ", " + quoted(folders[1]->first) +
           ")";
  }
  const bool any_config =
      std::any_of(places_.begin(), places_.end(), [](const auto& e) { return e.second.config.has_value(); });
  const bool any_weights =
      std::any_of(places_.begin(), places_.end(), [](const auto& e) { return e.second.weights.has_value(); });
  if (!any_config) return "no " + std::string(config_name);
  if (!any_weights) return "no " + std::string(weights_name);
  return std::string(config_name) + " and " + std::string(weights_name) + " are not in the same folder";
}

}  // namespace modeldrop::preflight
