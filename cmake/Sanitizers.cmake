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
