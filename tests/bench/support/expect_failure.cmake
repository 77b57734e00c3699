# Run COMMAND (a ;-list) and pass only when it exits non-zero and its stderr matches EXPECT:
# the check of the shared benchmark main must turn each deliberate problem into a failure.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(status EQUAL 0)
  message(FATAL_ERROR "exited 0, expected a failure matching '${EXPECT}'")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "exited ${status} but stderr does not match '${EXPECT}'")
endif()
