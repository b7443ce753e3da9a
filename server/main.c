/* main.c: the tunneld program (accepts tunnel clients, serves the management API and the public ports). */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "pki.h"
#include "server.h"
#include "tunnel/args.h"
#include "tunnel/certcheck.h"
#include "tunnel/defaults.h"
#include "tunnel/log.h"
#include "tunnel/loop.h"
#include "tunnel/notify.h"

struct program {
  uv_loop_t loop;
  struct tn_loop_signals signals;
  struct td_server server;
};

static void usage(FILE *out)
{
  fprintf(out,
          "usage: tunneld [--config FILE] [--check-config [--service-user USER] [--installed-as PATH]]\n"
          "       tunneld pki init|issue|show ...   (tunneld pki --help)\n"
          "       tunneld --version | --help\n"
          "\n"
          "Accepts tunnelc clients on the control port (mutual TLS), serves the management\n"
          "API to admin certificates, and carries each public port's connections to a client.\n"
          "\n"
          "  --config FILE    configuration (default " TN_DEFAULT_SERVER_CONFIG ")\n"
          "  --check-config   load and validate configuration, certificates and state file, then exit 0 or 1;\n"
          "                   also flags certificates outside their dates and, run as root, files the\n"
          "                   service user (--service-user, default " TN_CERTCHECK_DEFAULT_USER ") cannot read\n"
          "  --installed-as PATH  with --check-config: the file checked is a copy that will be installed at\n"
          "                   PATH (Ansible's validate); the service user must be able to enter PATH's\n"
          "                   directory, and the copy itself is not judged for readability\n"
          "\n"
          "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads certificates and CA.\n"
          "Documentation: docs/CONFIG.md, docs/API.md, docs/OPERATIONS.md.\n");
}

static void on_stopped(struct td_server *srv)
{
  struct program *p = (struct program *)(void *)((char *)srv - offsetof(struct program, server));

  /* Called from a timer callback; main closes what remains once the loop is back. */
  tn_loop_signals_stop(&p->signals);
  uv_stop(&p->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
  struct program *p = s->data;

  if (signum == SIGHUP) {
    char err[768], status[900];

    tn_notify_reloading();
    /* READY=1 either way: the loaded certificates still serve; STATUS= is what tells the operator. */
    if (td_server_reload(&p->server, err, sizeof(err)) != 0) {
      snprintf(status, sizeof(status), "reload failed, serving with the loaded certificates: %s", err);
      tn_notify_ready(status);
    } else {
      tn_notify_ready("reloaded");
    }
    return;
  }
  td_server_stop(&p->server);
}

int main(int argc, char **argv)
{
  struct program p;
  struct tn_args args = { TN_DEFAULT_SERVER_CONFIG, NULL, 0, NULL };
  const char *config_path;
  char err[1024];
  int rc;

  if (argc >= 2 && strcmp(argv[1], "pki") == 0)
    return td_pki_main(argc - 1, argv + 1);
  if ((rc = tn_args_parse(argc, argv, "tunneld", usage, &args)) >= 0)
    return rc;
  config_path = args.config_path;
  memset(&p, 0, sizeof(p));

  tn_log_init("tunneld", TN_LOG_INFO);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&p.loop);
  if (td_server_init(&p.server, &p.loop, config_path, err, sizeof(err)) != 0) {
    fprintf(stderr, "tunneld: %s\n", err);
    uv_loop_close(&p.loop);
    return 1;
  }
  if (args.check_only) {
    const struct td_config *cfg = &p.server.cfg;
    const struct tn_certcheck_file files[] = {
      /* A copy checked before it is installed (Ansible's validate): the service user reads the file
       * at the place it will be installed, written there with its mode after this check. */
      args.installed_as != NULL ? (struct tn_certcheck_file){ args.installed_as, "--installed-as", TN_CERTCHECK_INSTALLED }
                                : (struct tn_certcheck_file){ config_path, "--config", TN_CERTCHECK_FILE },
      { cfg->cert_file, "ServerTlsCertificateFile", TN_CERTCHECK_OWN_CERT },
      { cfg->key_file, "ServerTlsKeyFile", TN_CERTCHECK_FILE },
      { cfg->ca_file, "CaCertificateFile", TN_CERTCHECK_CA },
      { cfg->crl_file, "CrlFile", TN_CERTCHECK_FILE },
    };
    struct tn_certcheck cc;

    rc = 0;

    tn_certcheck_init(&cc, stdout, "tunneld", (int64_t)time(NULL));
    tn_certcheck_files(&cc, files, sizeof(files) / sizeof(files[0]), args.service_user);
    if (cc.errors > 0) {
      printf("tunneld: %s: %u problem(s) found\n", config_path, cc.errors);
      rc = 1;
    } else {
      printf("tunneld: %s: configuration OK (%zu tunnels in %s)\n", config_path, p.server.table.n,
             cfg->state_file);
    }
    td_server_free(&p.server);
    uv_loop_close(&p.loop);
    return rc;
  }
  if (p.server.cfg.debug_log)
    tn_log_set_level(TN_LOG_DEBUG);
  p.server.on_stopped = on_stopped;
  if (td_server_start(&p.server, err, sizeof(err)) != 0) {
    fprintf(stderr, "tunneld: %s\n", err);
    tn_loop_close_all(&p.loop);
    td_server_free(&p.server);
    uv_loop_close(&p.loop);
    return 1;
  }
  tn_loop_signals_start(&p.loop, &p.signals, on_signal, &p);

  uv_run(&p.loop, UV_RUN_DEFAULT);
  tn_loop_close_all(&p.loop);
  td_server_free(&p.server);
  if (uv_loop_close(&p.loop) != 0)
    tn_log_warn("server: event loop closed with handles still open");
  tn_log_info("server: stopped");
  return 0;
}
