#pragma once

// docs/cli.md. The values of sysexits.h, named for what they mean to modeldrop.
namespace modeldrop::exit_code {
inline constexpr int kSuccess = 0;
inline constexpr int kRuntimeError = 1;
inline constexpr int kUsage = 2;
inline constexpr int kDatabaseUnavailable = 69;  // EX_UNAVAILABLE
inline constexpr int kConfigError = 78;          // EX_CONFIG
}  // namespace modeldrop::exit_code
