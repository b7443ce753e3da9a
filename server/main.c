/* main.c: the tunneld program (accepts tunnel clients, serves the management API and the public ports). */
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "pki.h"
#include "server.h"
#include "state.h"
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
          "usage: tunneld [--config FILE] [--init-state] [--check-config [--service-user USER] [--installed-as PATH]]\n"
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
          "  --init-state     a missing StateFile is a first start: begin with an empty table and write the\n"
          "                   file (without it a missing state file stops tunneld: revocations live there)\n"
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

/*
 * The state file holds the revocations: a start must not take a missing one for an empty list, nor trust one that
 * others could have replaced, nor cut a table down to MaxTunnels. service_uid owns the directory besides root.
 */
static int state_vet(struct td_server *srv, const char *config_path, uid_t service_uid, int init_state, int check_only,
                     char *err, size_t errlen)
{
  const char *path = srv->cfg.state_file;
  char why[768];

  if (td_state_check_place(path, service_uid, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "%s: \"StateFile\": %s", config_path, why);
    return -1;
  }
  if (td_state_missing(path)) {
    if (!init_state) {
      snprintf(err, errlen, "%s: \"StateFile\": %s: missing; it holds the tunnel table and the revoked certificates, "
               "so its absence is not taken for an empty list. On a first start run tunneld once with --init-state "
               "to create an empty one", config_path, path);
      return -1;
    }
    if (!check_only) {
      if (td_state_save(path, &srv->table, &srv->revoked, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: \"StateFile\": %s", config_path, why);
        return -1;
      }
      tn_log_info("server: %s: created an empty state file (--init-state)", path);
    }
  }
  if (srv->table.n > srv->cfg.limits.max_tunnels) {
    snprintf(err, errlen, "%s: \"StateFile\": %s: holds %zu tunnels, more than MaxTunnels (%u); raise "
             "Limits.MaxTunnels to at least %zu, none is dropped silently", config_path, path, srv->table.n,
             (unsigned)srv->cfg.limits.max_tunnels, srv->table.n);
    return -1;
  }
  return 0;
}

/* Takes --init-state out of argv (the shared parser knows the options both programs have). */
static int take_flag(int *argc, char **argv, const char *flag)
{
  int found = 0, k = 1;

  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], flag) == 0)
      found = 1;
    else
      argv[k++] = argv[i];
  }
  *argc = k;
  argv[k] = NULL;
  return found;
}

int main(int argc, char **argv)
{
  struct program p;
  struct tn_args args = { TN_DEFAULT_SERVER_CONFIG, NULL, 0, NULL };
  const char *config_path;
  char err[1024];
  int rc, init_state;
  uid_t service_uid = geteuid();

  if (argc >= 2 && strcmp(argv[1], "pki") == 0)
    return td_pki_main(argc - 1, argv + 1);
  init_state = take_flag(&argc, argv, "--init-state");
  if ((rc = tn_args_parse(argc, argv, "tunneld", usage, &args)) >= 0)
    return rc;
  if (args.check_only) {
    /* Checked for the user the service runs as; without that account, for whoever runs the check. */
    const struct passwd *pw = getpwnam(args.service_user != NULL ? args.service_user : TN_CERTCHECK_DEFAULT_USER);
    if (pw != NULL)
      service_uid = pw->pw_uid;
  }
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
  if (!args.check_only && state_vet(&p.server, config_path, service_uid, init_state, 0, err, sizeof(err)) != 0) {
    fprintf(stderr, "tunneld: %s\n", err);
    td_server_free(&p.server);
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
    /* As a start with the same options would judge it, listed with the other problems. */
    if (state_vet(&p.server, config_path, service_uid, init_state, 1, err, sizeof(err)) != 0) {
      printf("tunneld: %s\n", err);
      cc.errors++;
    }
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
