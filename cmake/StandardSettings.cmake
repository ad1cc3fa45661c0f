# Warnings and sanitizers as INTERFACE targets: every project target links distconv_settings.
add_library(distconv_warnings INTERFACE)
target_compile_options(distconv_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(DISTCONV_WERROR)
  target_compile_options(distconv_warnings INTERFACE -Werror)
endif()
if(NOT DISTCONV_SANITIZE STREQUAL "" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC's flow analysis reports false maybe-uninitialized warnings inside <regex>/<functional> once
  # the sanitizers instrument the code.
  target_compile_options(distconv_warnings INTERFACE -Wno-maybe-uninitialized)
endif()

add_library(distconv_sanitizers INTERFACE)
if(DISTCONV_SANITIZE STREQUAL "address")
  # -O1 -g1 (after the build type's -O2 -g, so they win): the optimisation ASan is usually run at,
  # with line tables for the reports, and compiles in less than half the time (CI builds it).
  target_compile_options(distconv_sanitizers INTERFACE -O1 -g1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(distconv_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(DISTCONV_SANITIZE STREQUAL "thread")
  target_compile_options(distconv_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(distconv_sanitizers INTERFACE -fsanitize=thread)
elseif(NOT DISTCONV_SANITIZE STREQUAL "")
  message(FATAL_ERROR "DISTCONV_SANITIZE must be '', 'address' or 'thread', not '${DISTCONV_SANITIZE}'")
endif()
if(DISTCONV_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DISTCONV_FUZZ needs clang (CC=clang CXX=clang++), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(NOT DISTCONV_SANITIZE STREQUAL "")
    message(FATAL_ERROR "DISTCONV_FUZZ brings its own sanitizers (ASan+UBSan); leave DISTCONV_SANITIZE empty")
  endif()
  # Coverage instrumentation for the libraries; the fuzz executables add libFuzzer's main at link time.
  target_compile_options(distconv_sanitizers INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                         -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(distconv_sanitizers INTERFACE -fsanitize=address,undefined)
endif()

add_library(distconv_settings INTERFACE)
target_link_libraries(distconv_settings INTERFACE distconv_warnings distconv_sanitizers)
# Headers are included as "common/...", "protocol/...", "dispatch_server/..." from the project root.
target_include_directories(distconv_settings INTERFACE ${PROJECT_SOURCE_DIR})

find_program(CLANG_FORMAT_PROGRAM clang-format)
if(CLANG_FORMAT_PROGRAM)
  file(GLOB_RECURSE DISTCONV_FORMAT_SOURCES CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/common/*.[ch]pp ${PROJECT_SOURCE_DIR}/protocol/*.[ch]pp
       ${PROJECT_SOURCE_DIR}/dispatch_server/*.[ch]pp ${PROJECT_SOURCE_DIR}/transcoding_engine/*.[ch]pp
       ${PROJECT_SOURCE_DIR}/submission_client/*.[ch]pp ${PROJECT_SOURCE_DIR}/tests/*.[ch]pp)
  add_custom_target(check_format
    COMMAND ${CLANG_FORMAT_PROGRAM} --dry-run --Werror ${DISTCONV_FORMAT_SOURCES}
    COMMENT "Checking formatting with clang-format")
  add_custom_target(format COMMAND ${CLANG_FORMAT_PROGRAM} -i ${DISTCONV_FORMAT_SOURCES})
endif()
