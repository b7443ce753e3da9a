# TunnelInstall.cmake: what `cmake --install` puts where, and the Debian package `cpack -G DEB` makes.
#
#   bin/                          tunneld, tunnelc (install rules in server/ and client/)
#   lib/systemd/system/           tunneld.service, tunnelc.service (ExecStart pointing at this prefix's bin/)
#   share/doc/tunnel/             README.md and docs/*.md
#   share/doc/tunnel/examples/    tunneld.json, tunnelc.json
#   share/man/man8/               tunneld.8.gz, tunnelc.8.gz
#
# The package installs under /usr, so build it from a tree configured with -DCMAKE_INSTALL_PREFIX=/usr:
#   cmake -S . -B build/deb -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DTUNNEL_TESTS=OFF
#   cmake --build build/deb && (cd build/deb && cpack -G DEB)

set(TUNNEL_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "Where units go, relative to the install prefix")

# The example units name /usr/bin; an install elsewhere (/usr/local) gets units that start its own binaries.
foreach(unit tunneld tunnelc)
  file(READ "${PROJECT_SOURCE_DIR}/examples/systemd/${unit}.service" _tunnel_unit)
  string(REPLACE "ExecStart=/usr/bin/" "ExecStart=${CMAKE_INSTALL_FULL_BINDIR}/" _tunnel_unit "${_tunnel_unit}")
  file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/systemd/${unit}.service" CONTENT "${_tunnel_unit}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/systemd/${unit}.service")
  install(FILES "${PROJECT_BINARY_DIR}/systemd/${unit}.service" DESTINATION "${TUNNEL_SYSTEMD_UNIT_DIR}")
endforeach()

# Man pages are installed compressed, as Debian's policy asks; -n keeps the archive reproducible.
find_program(TUNNEL_GZIP gzip REQUIRED)
set(_tunnel_man_gz)
foreach(page tunneld.8 tunnelc.8)
  add_custom_command(OUTPUT "${PROJECT_BINARY_DIR}/man/${page}.gz"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${PROJECT_BINARY_DIR}/man"
    COMMAND "${TUNNEL_GZIP}" -9nc "${PROJECT_SOURCE_DIR}/docs/man/${page}" > "${PROJECT_BINARY_DIR}/man/${page}.gz"
    DEPENDS "${PROJECT_SOURCE_DIR}/docs/man/${page}"
    COMMENT "Compressing man page ${page}" VERBATIM)
  list(APPEND _tunnel_man_gz "${PROJECT_BINARY_DIR}/man/${page}.gz")
endforeach()
add_custom_target(tunnel_man ALL DEPENDS ${_tunnel_man_gz})
install(FILES ${_tunnel_man_gz} DESTINATION "${CMAKE_INSTALL_MANDIR}/man8")

file(GLOB _tunnel_docs "${PROJECT_SOURCE_DIR}/docs/*.md")
install(FILES "${PROJECT_SOURCE_DIR}/README.md" ${_tunnel_docs} DESTINATION "${CMAKE_INSTALL_DOCDIR}")
install(FILES "${PROJECT_SOURCE_DIR}/examples/tunneld.json" "${PROJECT_SOURCE_DIR}/examples/tunnelc.json"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}/examples")
install(FILES "${PROJECT_SOURCE_DIR}/examples/systemd/tunneld.service"
              "${PROJECT_SOURCE_DIR}/examples/systemd/tunnelc.service"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}/examples/systemd")

# ---- Debian package ----
set(CPACK_PACKAGE_NAME "tunnel")
set(CPACK_PACKAGE_VENDOR "tunnel")
set(CPACK_PACKAGE_CONTACT "tunnel maintainers <tunnel@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "expose local services through a VPS over one mutually authenticated TLS link")
set(CPACK_PACKAGE_DESCRIPTION
    "tunneld runs on a host with a public address; tunnelc runs next to the services to publish and dials out \
to it over TLS 1.2 with a client certificate. Each connection to a public port travels as one multiplexed \
stream over that link and is spliced to a local service, optionally after a PROXY protocol header. A JSON \
management API over HTTPS with admin client certificates sets the tunnel table. Includes systemd units, \
man pages and an operator's guide.")
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# adduser for the maintainer scripts; the shared libraries come from dpkg-shlibdeps below.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
find_program(TUNNEL_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TUNNEL_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  # Without dpkg-shlibdeps: the packages of this system that own the libraries linked, so the package
  # built on each release names that release's packages (libmbedtls14 on Debian 12, libmbedtls21 on 13...).
  foreach(_lib MbedTLS_TLS_LIBRARY MbedTLS_X509_LIBRARY MbedTLS_CRYPTO_LIBRARY LLHTTP_LIBRARY)
    if(${_lib})
      get_filename_component(_real "${${_lib}}" REALPATH)
      execute_process(COMMAND dpkg -S "${_real}" OUTPUT_VARIABLE _owner ERROR_QUIET RESULT_VARIABLE _rc)
      if(_rc EQUAL 0 AND _owner MATCHES "^([^:, ]+)")
        string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", ${CMAKE_MATCH_1}")
      else()
        message(WARNING "tunnel: no package owns ${_real}; the .deb will not depend on it (install dpkg-dev)")
      endif()
    endif()
  endforeach()
  foreach(_mod LIBUV JANSSON)
    foreach(_libdir ${${_mod}_LIBRARY_DIRS})
      foreach(_name ${${_mod}_LIBRARIES})
        if(EXISTS "${_libdir}/lib${_name}.so")
          get_filename_component(_real "${_libdir}/lib${_name}.so" REALPATH)
          execute_process(COMMAND dpkg -S "${_real}" OUTPUT_VARIABLE _owner ERROR_QUIET RESULT_VARIABLE _rc)
          if(_rc EQUAL 0 AND _owner MATCHES "^([^:, ]+)")
            string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", ${CMAKE_MATCH_1}")
          endif()
        endif()
      endforeach()
    endforeach()
  endforeach()
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libc6")
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/cmake/debian/postinst"
    "${PROJECT_SOURCE_DIR}/cmake/debian/prerm"
    "${PROJECT_SOURCE_DIR}/cmake/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# A package for /usr/local would clash with Debian's layout: refuse it instead of shipping it.
set(CPACK_PROJECT_CONFIG_FILE "${PROJECT_SOURCE_DIR}/cmake/TunnelCPackConfig.cmake")
include(CPack)
