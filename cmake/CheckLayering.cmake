cmake_minimum_required(VERSION 3.18)
# Run by ctest (lib.layering): the sans-I/O layers' objects must not reference the clock, the file system, libuv or
# the log. A core file that calls time(), opens a file or calls uv_* makes this test fail, whatever header it
# reached the declaration through. OBJECTS: object files separated by '|'; LAYER: the layer's name for messages.
if(NOT OBJECTS OR NOT NM)
  message(FATAL_ERROR "CheckLayering.cmake needs -DOBJECTS=a.o|b.o -DNM=nm -DLAYER=name")
endif()
set(forbidden_exact
  time clock_gettime gettimeofday clock ftime                       # the clock: time is an argument
  open open64 openat openat64 creat creat64 fopen fopen64 freopen fdopen opendir
  stat stat64 lstat lstat64 fstat fstat64 __xstat __lxstat __fxstat __xstat64 __lxstat64 __fxstat64
  read write pread pwrite unlink rename fsync mkstemp                # the file system: bytes come in as buffers
  stderr stdout fprintf vfprintf fputs fwrite syslog                 # logging belongs to the adapter
  mbedtls_x509_crt_parse_file mbedtls_x509_crt_parse_path mbedtls_pk_parse_keyfile mbedtls_x509_crl_parse_file)
set(forbidden_prefixes uv_ tn_log tn_file_ tn_ratelog tn_notify)
string(REPLACE "|" ";" objects "${OBJECTS}")
set(bad "")
foreach(obj ${objects})
  execute_process(COMMAND "${NM}" -u "${obj}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -u ${obj} failed")
  endif()
  string(REGEX MATCHALL "U [^\n]+" refs "${out}")
  foreach(ref ${refs})
    string(REGEX REPLACE "^U ([^@]+).*$" "\\1" sym "${ref}")
    set(hit FALSE)
    if(sym IN_LIST forbidden_exact)
      set(hit TRUE)
    endif()
    foreach(p ${forbidden_prefixes})
      string(FIND "${sym}" "${p}" at)
      if(at EQUAL 0)
        set(hit TRUE)
      endif()
    endforeach()
    if(hit)
      get_filename_component(name "${obj}" NAME)
      list(APPEND bad "${name}: ${sym}")
    endif()
  endforeach()
endforeach()
if(bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "${LAYER}: the sans-I/O layer references what only the adapter may use:\n  ${bad}")
endif()
list(LENGTH objects n)
message(STATUS "${LAYER}: ${n} objects, no clock, file, libuv or log references")
