#include "watch/filesystem_kind.hpp"

#include <sys/vfs.h>

#include <array>
#include <utility>

namespace modeldrop::watch {

namespace {

// f_type values from linux/magic.h and the filesystems' own headers.
constexpr std::array<std::pair<std::int64_t, std::string_view>, 16> kNetworkFilesystems{{
    {0x6969, "NFS"},
    {0x517B, "SMB"},
    {0xFF534D42, "CIFS"},
    {0xFE534D42, "SMB2"},
    {0x01021997, "9p"},
    {0x65735546, "FUSE"},
    {0x5346414F, "AFS"},
    {0x6B414653, "AFS"},
    {0x00C36400, "Ceph"},
    {0x73757245, "Coda"},
    {0x564C, "NCP"},
    {0x47504653, "GPFS"},
    {0x0BD00BD0, "Lustre"},
    {0x01161970, "GFS2"},
    {0x7461636F, "OCFS2"},
    {0x19830326, "FhGFS"},
}};

}  // namespace

std::optional<std::string_view> network_filesystem_name(std::int64_t statfs_type) {
  // f_type is a signed long: a magic with the top bit set (CIFS) reads back negative.
  const auto type = static_cast<std::int64_t>(static_cast<std::uint32_t>(statfs_type));
  for (const auto& [magic, name] : kNetworkFilesystems) {
    if (magic == type) return name;
  }
  return std::nullopt;
}

std::optional<std::string_view> network_filesystem_of(const std::filesystem::path& dir) {
  struct statfs info {};
  if (::statfs(dir.c_str(), &info) != 0) return std::nullopt;
  return network_filesystem_name(info.f_type);
}

}  // namespace modeldrop::watch
