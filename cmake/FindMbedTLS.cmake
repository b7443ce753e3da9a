# FindMbedTLS: locate mbedTLS 2.28 or 3.x (Debian 12 ships no pkg-config or CMake config for 2.28).
# Provides MbedTLS::mbedtls, MbedTLS::mbedx509, MbedTLS::mbedcrypto and MbedTLS_VERSION.

find_path(MbedTLS_INCLUDE_DIR mbedtls/ssl.h)
find_library(MbedTLS_TLS_LIBRARY NAMES mbedtls)
find_library(MbedTLS_X509_LIBRARY NAMES mbedx509)
find_library(MbedTLS_CRYPTO_LIBRARY NAMES mbedcrypto)

# 3.x keeps the version in build_info.h (version.h only includes it); 2.x in version.h.
foreach(_mbedtls_header build_info.h version.h)
  if(MbedTLS_INCLUDE_DIR AND NOT MbedTLS_VERSION AND EXISTS "${MbedTLS_INCLUDE_DIR}/mbedtls/${_mbedtls_header}")
    file(STRINGS "${MbedTLS_INCLUDE_DIR}/mbedtls/${_mbedtls_header}" _mbedtls_version_line
         REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
    if(_mbedtls_version_line)
      string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" MbedTLS_VERSION "${_mbedtls_version_line}")
    endif()
  endif()
endforeach()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(MbedTLS
  REQUIRED_VARS MbedTLS_INCLUDE_DIR MbedTLS_TLS_LIBRARY MbedTLS_X509_LIBRARY MbedTLS_CRYPTO_LIBRARY
  VERSION_VAR MbedTLS_VERSION)

if(MbedTLS_FOUND)
  if(NOT TARGET MbedTLS::mbedcrypto)
    add_library(MbedTLS::mbedcrypto UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedcrypto PROPERTIES
      IMPORTED_LOCATION "${MbedTLS_CRYPTO_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${MbedTLS_INCLUDE_DIR}")
  endif()
  if(NOT TARGET MbedTLS::mbedx509)
    add_library(MbedTLS::mbedx509 UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedx509 PROPERTIES
      IMPORTED_LOCATION "${MbedTLS_X509_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${MbedTLS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES MbedTLS::mbedcrypto)
  endif()
  if(NOT TARGET MbedTLS::mbedtls)
    add_library(MbedTLS::mbedtls UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedtls PROPERTIES
      IMPORTED_LOCATION "${MbedTLS_TLS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${MbedTLS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES MbedTLS::mbedx509)
  endif()
endif()

mark_as_advanced(MbedTLS_INCLUDE_DIR MbedTLS_TLS_LIBRARY MbedTLS_X509_LIBRARY MbedTLS_CRYPTO_LIBRARY)
