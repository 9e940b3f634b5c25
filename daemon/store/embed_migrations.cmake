# Turns migrations/NNNN_name.sql into a C++ source holding their text, so the binaries carry
# their schema and cannot drift from it. Run as:
#   cmake -DMIGRATIONS_DIR=<dir> -DOUTPUT=<file.cpp> -P embed_migrations.cmake
file(GLOB names RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT names)
set(delimiter "migration_sql")
set(entries "")
set(expected 1)
foreach(name IN LISTS names)
  if(NOT name MATCHES "^([0-9][0-9][0-9][0-9])_[a-z0-9_]+\\.sql$")
    message(FATAL_ERROR "migrations/${name}: the name must be NNNN_words.sql (lowercase, digits, _)")
  endif()
  string(REGEX REPLACE "^0+" "" version "${CMAKE_MATCH_1}")
  if(NOT version EQUAL expected)
    message(FATAL_ERROR "migrations/${name}: expected version ${expected} next; versions must run 1, 2, 3 ... without gaps")
  endif()
  file(READ "${MIGRATIONS_DIR}/${name}" sql)
  string(FIND "${sql}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "migrations/${name}: contains the raw-string delimiter )${delimiter}\"")
  endif()
  string(APPEND entries "    {${version}, \"${name}\", R\"${delimiter}(${sql})${delimiter}\"},\n")
  math(EXPR expected "${expected} + 1")
endforeach()
if(entries STREQUAL "")
  message(FATAL_ERROR "no migrations found in ${MIGRATIONS_DIR}")
endif()

set(content "// Generated from migrations/*.sql by daemon/store/embed_migrations.cmake. Do not edit.
#include \"store/migrations.hpp\"

namespace modeldrop::store {
namespace {

constexpr Migration kEmbeddedMigrations[] = {
${entries}};

}  // namespace

std::span<const Migration> embedded_migrations() { return kEmbeddedMigrations; }

}  // namespace modeldrop::store
")
# Rewrite only on change, so an unrelated reconfigure does not rebuild the store.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
  if(previous STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
