# Writes OUTPUT from `PROGRAM --bash-completion` (run at build time by daemon/CMakeLists.txt).
execute_process(COMMAND ${PROGRAM} --bash-completion OUTPUT_FILE ${OUTPUT} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --bash-completion failed: ${result}")
endif()
