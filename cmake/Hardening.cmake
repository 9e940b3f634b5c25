# Release hardening. The -U keeps a Debian package build (which passes its own
# _FORTIFY_SOURCE=2) from failing under -Werror with a redefinition warning.
option(MODELDROP_HARDENING "Harden the binaries (fortify, stack protector, CET, PIE, RELRO)" OFF)
if(MODELDROP_HARDENING)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  target_compile_options(modeldrop_options INTERFACE
    -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fcf-protection -fPIE)
  target_link_options(modeldrop_options INTERFACE -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack)
endif()
