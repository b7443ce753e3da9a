/* guard/uv.h: stands first on the protocol core's include path, so a core file that includes uv.h fails to build. */
#error "the sans-I/O core (tunnelcore_proto, tunnelcore_tls) must not use libuv: move this code to the adapter"
