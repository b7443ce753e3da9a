# FindLLHTTP: llhttp as the release ships it. Debian 12's node-llhttp ships C sources,
# built here into a static target; Debian 13 ships the library itself (libllhttp-dev).
# Provides LLHTTP::llhttp. Sources built here are compiled with warnings off: they are
# not ours, and -Werror applies to our own targets only.

find_path(LLHTTP_INCLUDE_DIR llhttp.h
  PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include
  NO_DEFAULT_PATH)
find_path(LLHTTP_SOURCE_DIR llhttp.c
  PATHS /usr/share/llhttp /usr/src/llhttp
  NO_DEFAULT_PATH)
if(NOT LLHTTP_SOURCE_DIR)
  find_library(LLHTTP_LIBRARY NAMES llhttp)
endif()

if(LLHTTP_INCLUDE_DIR AND EXISTS "${LLHTTP_INCLUDE_DIR}/llhttp.h")
  file(STRINGS "${LLHTTP_INCLUDE_DIR}/llhttp.h" _llhttp_ver REGEX "^#define LLHTTP_VERSION_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3" LLHTTP_VERSION "${_llhttp_ver}")
endif()

include(FindPackageHandleStandardArgs)
if(LLHTTP_SOURCE_DIR)
  set(_llhttp_from LLHTTP_SOURCE_DIR)
else()
  set(_llhttp_from LLHTTP_LIBRARY)
endif()
find_package_handle_standard_args(LLHTTP
  REQUIRED_VARS LLHTTP_INCLUDE_DIR ${_llhttp_from}
  VERSION_VAR LLHTTP_VERSION)

if(LLHTTP_FOUND AND NOT TARGET LLHTTP::llhttp AND NOT LLHTTP_SOURCE_DIR)
  add_library(LLHTTP::llhttp UNKNOWN IMPORTED)
  set_target_properties(LLHTTP::llhttp PROPERTIES
    IMPORTED_LOCATION "${LLHTTP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LLHTTP_INCLUDE_DIR}")
elseif(LLHTTP_FOUND AND NOT TARGET LLHTTP::llhttp)
  add_library(tunnel_llhttp STATIC
    "${LLHTTP_SOURCE_DIR}/api.c"
    "${LLHTTP_SOURCE_DIR}/http.c"
    "${LLHTTP_SOURCE_DIR}/llhttp.c")
  target_include_directories(tunnel_llhttp SYSTEM PUBLIC "${LLHTTP_INCLUDE_DIR}")
  target_compile_options(tunnel_llhttp PRIVATE -w)
  set_target_properties(tunnel_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
  add_library(LLHTTP::llhttp ALIAS tunnel_llhttp)
endif()

mark_as_advanced(LLHTTP_INCLUDE_DIR LLHTTP_SOURCE_DIR LLHTTP_LIBRARY)
