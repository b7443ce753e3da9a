/* fuzz_tls_client.c: arbitrary bytes as a server's TLS records into tunnelc's side of tn_tls (fuzz_tls.c's checks). */
#define FUZZ_TLS_CLIENT 1
#include "fuzz_tls.c"
