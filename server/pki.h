/* pki.h: the `tunneld pki` subcommand (init a CA, issue server/client/admin certificates, show one). */
#ifndef TD_PKI_H
#define TD_PKI_H

/* argv[0] is "pki". Returns the process exit status: 0 done, 1 failed, 2 usage error. */
int td_pki_main(int argc, char **argv);

#endif
