# MODELDROP_SANITIZE: "" | "address,undefined" | "thread". Applied to every target through
# modeldrop_options so that libraries, executables and tests agree.
set(MODELDROP_SANITIZE "" CACHE STRING "Sanitizers to build with (address,undefined | thread)")
add_library(modeldrop_options INTERFACE)
if(MODELDROP_SANITIZE)
  target_compile_options(modeldrop_options INTERFACE
    -fsanitize=${MODELDROP_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(modeldrop_options INTERFACE -fsanitize=${MODELDROP_SANITIZE})
  # gcc 12 warns that TSan does not instrument atomic_thread_fence, which Asio uses: a fact
  # about the tool, not a defect in our code, and fatal under -Werror.
  if(MODELDROP_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(modeldrop_options INTERFACE -Wno-tsan)
  endif()
endif()

# MODELDROP_FUZZ: the libFuzzer targets in tests/fuzz (clang only; see the `fuzz` preset).
# Libraries get the fuzzer's coverage instrumentation without its main; the fuzz executables
# link -fsanitize=fuzzer themselves. libstdc++'s assertions turn an out-of-range operator[]
# into a finding instead of a silent read.
option(MODELDROP_FUZZ "Build the libFuzzer targets in tests/fuzz (needs clang)" OFF)
if(MODELDROP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MODELDROP_FUZZ needs clang (libFuzzer): use the `fuzz` preset")
  endif()
  target_compile_options(modeldrop_options INTERFACE -fsanitize=fuzzer-no-link -D_GLIBCXX_ASSERTIONS)
endif()
