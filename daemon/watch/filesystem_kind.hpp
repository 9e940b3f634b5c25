#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

namespace modeldrop::watch {

// The name of a filesystem whose writes made elsewhere (another NFS client, the host of a 9p
// share, a FUSE daemon's backing store) raise no inotify event here; nullopt for local ones.
std::optional<std::string_view> network_filesystem_name(std::int64_t statfs_type);

// network_filesystem_name of the filesystem holding `dir`; nullopt also when statfs fails.
std::optional<std::string_view> network_filesystem_of(const std::filesystem::path& dir);

}  // namespace modeldrop::watch
