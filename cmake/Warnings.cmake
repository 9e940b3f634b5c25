# The warning set of cpp-best-practices/cmake_template, as an INTERFACE target that every
# modeldrop library and executable links PRIVATE.
add_library(modeldrop_warnings INTERFACE)
target_compile_options(modeldrop_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused
  -Woverloaded-virtual -Wpedantic -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  $<$<CXX_COMPILER_ID:GNU>:-Wmisleading-indentation -Wduplicated-cond -Wduplicated-branches -Wlogical-op -Wuseless-cast>
  # gcc 12 reports -Wnull-dereference false positives inside inlined libstdc++ code at -O2
  # (std::string in CLI11's parser); the unoptimised builds (dev, asan) keep the check.
  $<$<CONFIG:Debug>:-Wnull-dereference>
  $<$<BOOL:${MODELDROP_WARNINGS_AS_ERRORS}>:-Werror>)
