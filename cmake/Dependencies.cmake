# Every dependency comes from Debian 12's packages (scripts/install-deps installs them).
# Boost must be the 1.81 family: Debian's default 1.74 has neither Boost.JSON nor Boost.URL.
find_package(Boost 1.81.0 EXACT REQUIRED CONFIG COMPONENTS json url system)
find_package(OpenSSL 3 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(LibArchive 3.6 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# Boost.Asio/Beast are header-only; compile them once (see daemon/common/asio_impl.cpp).
add_library(modeldrop_boost_headers INTERFACE)
target_link_libraries(modeldrop_boost_headers INTERFACE Boost::headers Boost::system)
target_compile_definitions(modeldrop_boost_headers INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
