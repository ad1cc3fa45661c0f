# What `cmake --install` lays out, and the Debian package `cpack -G DEB` makes of it.
#
#   <prefix>/bin/                       distconv-dispatch, distconv-engine, distconv (their own install() rules)
#   /etc/distconv/                      dispatch.ini, engine.ini (the examples; never overwritten)
#   <prefix>/lib/systemd/system/        distconv-dispatch.service, distconv-engine.service
#   <prefix>/lib/sysusers.d/            distconv.conf (the distconv system user)
#   <prefix>/share/doc/distconv/        README.md, LICENSE, docs/*.md, openapi.yaml, examples/
#   <prefix>/share/distconv/            gen-certs.sh
#
# The units name /usr/bin and /usr/share/doc: they are rewritten at install time for the prefix actually installed to.
# The configuration lives in /etc/distconv whatever the prefix, as the units expect; turn
# DISTCONV_INSTALL_SYSTEM_FILES off to install without anything outside the prefix (no /etc).

include(GNUInstallDirs)

option(DISTCONV_INSTALL_SYSTEM_FILES "Install /etc/distconv configs (besides the prefix)" ON)

set(DISTCONV_DOC_DIR "${CMAKE_INSTALL_DATADIR}/doc/distconv")

# Configuration: the example files become /etc/distconv/{dispatch,engine}.ini unless present, so
# re-installing from source keeps an administrator's edits (the .deb marks them conffiles).
if(DISTCONV_INSTALL_SYSTEM_FILES)
  install(CODE "
    foreach(pair \"dispatch;${PROJECT_SOURCE_DIR}/dispatch_server/dispatch.example.ini\"
                 \"engine;${PROJECT_SOURCE_DIR}/transcoding_engine/engine.example.ini\")
      list(GET pair 0 name)
      list(GET pair 1 example)
      if(EXISTS \"\$ENV{DESTDIR}/etc/distconv/\${name}.ini\")
        message(STATUS \"Keeping: \$ENV{DESTDIR}/etc/distconv/\${name}.ini\")
      else()
        file(INSTALL DESTINATION \"/etc/distconv\" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
             FILES \"\${example}\" RENAME \"\${name}.ini\")
      endif()
    endforeach()
  ")
endif()
install(FILES dispatch_server/dispatch.example.ini transcoding_engine/engine.example.ini
        DESTINATION "${DISTCONV_DOC_DIR}/examples")

# systemd units with the binaries' real directory, and the system user.
foreach(unit distconv-dispatch.service distconv-engine.service)
  install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/scripts/systemd/${unit}\" text)
    string(REPLACE \"/usr/bin/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/\" text \"\${text}\")
    string(REPLACE \"file:///usr/share/doc/distconv/\" \"file://\${CMAKE_INSTALL_PREFIX}/${DISTCONV_DOC_DIR}/\" text \"\${text}\")
    # One staging copy per destination: installs to several places may run at once (cpack, tests).
    string(MD5 where \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/systemd/\${where}/${unit}\" \"\${text}\")
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES \"${PROJECT_BINARY_DIR}/systemd/\${where}/${unit}\")
  ")
endforeach()
install(FILES scripts/systemd/distconv.sysusers DESTINATION lib/sysusers.d RENAME distconv.conf)

# Documentation and tools.
file(GLOB DISTCONV_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES README.md LICENSE protocol/openapi.yaml ${DISTCONV_DOCS} DESTINATION "${DISTCONV_DOC_DIR}")
install(PROGRAMS scripts/gen-certs.sh DESTINATION "${CMAKE_INSTALL_DATADIR}/distconv")

# Debian package: cpack -G DEB (from the build directory).
set(CPACK_GENERATOR "DEB" CACHE STRING "CPack generators")
set(CPACK_PACKAGE_NAME "distconv")
set(CPACK_PACKAGE_VENDOR "distconv")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "distributed video transcoding: dispatch server, engine and CLI")
set(CPACK_PACKAGE_DESCRIPTION
    "distconv spreads ffmpeg transcoding over several machines. distconv-dispatch keeps the job queue, storage pools and REST API; distconv-engine runs assignments on each transcoding machine; distconv is the users' CLI.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "distconv maintainers <distconv@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION "video")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# The shared libraries come from dpkg-shlibdeps; ffmpeg/ffprobe are run as programs, ffmpeg in
# bubblewrap's sandbox.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ffmpeg, bubblewrap")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd, openssl")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/debian/conffiles;${PROJECT_SOURCE_DIR}/debian/postinst;${PROJECT_SOURCE_DIR}/debian/prerm;${PROJECT_SOURCE_DIR}/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
