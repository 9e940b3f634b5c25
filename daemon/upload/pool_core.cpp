#include "upload/pool_core.hpp"

#include <algorithm>

namespace modeldrop::upload {
namespace {

bool has_control_characters(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
}

}  // namespace

bool is_header_safe(std::string_view text) {
  return !has_control_characters(text);
}

Result<void> UploadPool::Core::configure(const PoolSettings& next) {
  if (has_control_characters(next.token)) return make_error("the API token contains control characters");
  if (has_control_characters(next.user_agent)) return make_error("the User-Agent contains control characters");
  auto parsed_origin = parse_origin(next.api.base_url);
  if (!parsed_origin) return parsed_origin.error();
  Origin next_origin = std::move(parsed_origin).value();
  auto chosen_proxy = choose_proxy(next_origin.host, next.api.proxy, next.proxy_environment);
  if (!chosen_proxy) return chosen_proxy.error();
  auto built_context = make_tls_context(next.api);
  if (!built_context) return built_context.error();

  const bool same_route = tls_context && next_origin == route.origin && next.api.ca_file == settings.api.ca_file &&
                          next.api.proxy == settings.api.proxy &&
                          next.proxy_environment.https_proxy == settings.proxy_environment.https_proxy &&
                          next.proxy_environment.no_proxy == settings.proxy_environment.no_proxy;
  if (!same_route) {
    idle.close_all();
    route.origin = std::move(next_origin);
    route.proxy = std::move(chosen_proxy).value();
    tls_context = std::move(built_context).value();
  }
  if (bucket.rate() != next.max_bytes_per_second) bucket.set_rate(next.max_bytes_per_second, SteadyClock::now());
  settings = next;
  return {};
}

}  // namespace modeldrop::upload
