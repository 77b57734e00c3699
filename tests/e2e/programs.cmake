# The programs the end-to-end tests run, from other parts of the tree: e2e_hvmmd, e2e_hvmm_vm,
# e2e_hvmm_client and e2e_hvmm hold their paths ($<TARGET_FILE:...>) or "" when the target
# is not part of this build (the tests then skip and say which one is missing), and
# e2e_programs the targets that exist, for add_dependencies.
function(hvmm_e2e_program out)
  foreach(target ${ARGN})
    if(TARGET ${target})
      set(${out} "$<TARGET_FILE:${target}>" PARENT_SCOPE)
      set(${out}_TARGET ${target} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
  set(${out}_TARGET "" PARENT_SCOPE)
endfunction()
hvmm_e2e_program(e2e_hvmmd hvmmd)
hvmm_e2e_program(e2e_hvmm_vm hvmm-vm hvmm_vm)
hvmm_e2e_program(e2e_hvmm_client hvmm-client hvmm_client_binary)
hvmm_e2e_program(e2e_hvmm hvmm)
set(e2e_programs ${e2e_hvmmd_TARGET} ${e2e_hvmm_vm_TARGET} ${e2e_hvmm_client_TARGET}
                 ${e2e_hvmm_TARGET})

# hvmm_e2e_tests builds every end-to-end test and what they run (the nested-KVM stage needs
# it); each area of tests/e2e adds its tests to it.
# BUILD/tests/e2e/programs.txt lists the programs that exist, one path a line, for
# tests/nested-kvm/run.sh to copy into its guest.
if(NOT TARGET hvmm_e2e_tests)
  add_custom_target(hvmm_e2e_tests)
  if(e2e_programs)
    add_dependencies(hvmm_e2e_tests ${e2e_programs})
  endif()
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/tests/e2e/programs.txt
       CONTENT "${e2e_hvmmd}\n${e2e_hvmm_vm}\n${e2e_hvmm_client}\n")
endif()
