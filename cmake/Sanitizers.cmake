# MODELDROP_SANITIZE: "" | "address,undefined" | "thread". Applied to every target through
# modeldrop_options so that libraries, executables and tests agree.
set(MODELDROP_SANITIZE "" CACHE STRING "Sanitizers to build with (address,undefined | thread)")
add_library(modeldrop_options INTERFACE)
if(MODELDROP_SANITIZE)
  target_compile_options(modeldrop_options INTERFACE
    -fsanitize=${MODELDROP_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(modeldrop_options INTERFACE -fsanitize=${MODELDROP_SANITIZE})
endif()
