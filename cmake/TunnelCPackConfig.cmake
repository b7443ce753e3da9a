# Read by cpack at packaging time (CPACK_PROJECT_CONFIG_FILE).
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "tunnel: the Debian package installs under /usr, but this tree was configured with "
                      "CMAKE_INSTALL_PREFIX=${CPACK_PACKAGING_INSTALL_PREFIX}; reconfigure with -DCMAKE_INSTALL_PREFIX=/usr")
endif()
