#pragma once

#include "common/error.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::store {

// docs/database.md: the database and its directory belong to group `modeldrop` where it exists, so
// its members can query and steer, and nobody else can.
inline constexpr unsigned kDatabaseFileMode = 0660;
inline constexpr unsigned kDatabaseDirectoryMode = 02770;  // setgid: -wal and -shm inherit the group

// Creates the database's directory (parents as needed) and an empty database file when they
// are absent, with the modes above and owned by `group` when such a group exists. What exists
// already is left as it is. Returns warnings (a group that could not be set) for the log.
Result<std::vector<std::string>> create_database_file(const std::filesystem::path& file, std::string_view group);

}  // namespace modeldrop::store
