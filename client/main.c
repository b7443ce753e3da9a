/* main.c: the tunnelc program (keeps a connection to each tunneld and splices its streams to local services). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "client.h"
#include "tunnel/args.h"
#include "tunnel/certcheck.h"
#include "tunnel/defaults.h"
#include "tunnel/log.h"
#include "tunnel/loop.h"
#include "tunnel/notify.h"

struct program {
  uv_loop_t loop;
  struct tn_loop_signals signals;
  struct tc_client client;
  const char *config_path;
};

static void usage(FILE *out)
{
  fprintf(out,
          "usage: tunnelc [--config FILE] [--check-config [--service-user USER] [--installed-as PATH]]\n"
          "       tunnelc --version | --help\n"
          "\n"
          "Keeps one mutually authenticated TLS connection to each configured tunneld and\n"
          "splices each connection it carries to a local service allowed by the configuration.\n"
          "\n"
          "  --config FILE    configuration (default " TN_DEFAULT_CLIENT_CONFIG ")\n"
          "  --check-config   load and validate the configuration and certificates, then exit 0 or 1;\n"
          "                   also flags certificates outside their dates and, run as root, files the\n"
          "                   service user (--service-user, default " TN_CERTCHECK_DEFAULT_USER ") cannot read\n"
          "  --installed-as PATH  with --check-config: the file checked is a copy that will be installed at\n"
          "                   PATH (Ansible's validate); the service user must be able to enter PATH's\n"
          "                   directory, and the copy itself is not judged for readability\n"
          "\n"
          "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads configuration and certificates.\n"
          "Documentation: docs/CONFIG.md, docs/OPERATIONS.md.\n");
}

static void on_stopped(struct tc_client *c)
{
  struct program *p = (struct program *)((char *)c - offsetof(struct program, client));

  tn_loop_signals_stop(&p->signals);
  /* Called from inside the link's close: closing every handle here would close the link's own handles
   * before it does (a libuv assertion). main closes what remains once the loop is back. */
  uv_stop(&p->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
  struct program *p = s->data;

  if (signum == SIGHUP) {
    char err[512], status[640];

    tn_notify_reloading();
    /* READY=1 either way: the running configuration still works; STATUS= is what tells the operator. */
    if (tc_client_reload(&p->client, p->config_path, err, sizeof(err)) != 0) {
      snprintf(status, sizeof(status), "reload failed, running with the loaded configuration: %s", err);
      tn_notify_ready(status);
    } else {
      tn_notify_ready(tc_client_status(&p->client));
    }
    return;
  }
  tc_client_stop(&p->client);
}

int main(int argc, char **argv)
{
  struct program p;
  struct tn_args args = { TN_DEFAULT_CLIENT_CONFIG, NULL, 0, NULL };
  char err[1024];
  int rc;

  if ((rc = tn_args_parse(argc, argv, "tunnelc", usage, &args)) >= 0)
    return rc;
  memset(&p, 0, sizeof(p));
  p.config_path = args.config_path;

  tn_log_init("tunnelc", TN_LOG_INFO);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&p.loop);
  if (tc_client_init(&p.client, &p.loop, p.config_path, err, sizeof(err)) != 0) {
    fprintf(stderr, "tunnelc: %s\n", err);
    uv_loop_close(&p.loop);
    return 1;
  }
  if (args.check_only) {
    const struct tc_config *cfg = &p.client.cfg;
    const struct tn_certcheck_file files[] = {
      /* A copy checked before it is installed (Ansible's validate): the service user reads the file
       * at the place it will be installed, written there with its mode after this check. */
      args.installed_as != NULL ? (struct tn_certcheck_file){ args.installed_as, "--installed-as", TN_CERTCHECK_INSTALLED }
                                : (struct tn_certcheck_file){ cfg->path, "--config", TN_CERTCHECK_FILE },
      { cfg->cert_file, "ClientTlsCertificateFile", TN_CERTCHECK_OWN_CERT },
      { cfg->key_file, "ClientTlsKeyFile", TN_CERTCHECK_FILE },
      { cfg->ca_file, "CaCertificateFile", TN_CERTCHECK_CA },
      { cfg->crl_file, "CrlFile", TN_CERTCHECK_FILE },
    };
    struct tn_certcheck cc;

    rc = 0;

    tn_certcheck_init(&cc, stdout, "tunnelc", (int64_t)time(NULL));
    tn_certcheck_files(&cc, files, sizeof(files) / sizeof(files[0]), args.service_user);
    if (cc.errors > 0) {
      printf("tunnelc: %s: %u problem(s) found\n", p.config_path, cc.errors);
      rc = 1;
    } else if (!cfg->servers_listed) {
      printf("tunnelc: %s: configuration OK (client identity %s, server %s:%u)\n", p.config_path,
             p.client.identity, cfg->server_host, (unsigned)cfg->server_port);
    } else {
      printf("tunnelc: %s: configuration OK (client identity %s, %zu servers:", p.config_path, p.client.identity,
             cfg->n_servers);
      for (size_t i = 0; i < cfg->n_servers; i++)
        printf("%s %s%s%s:%u", i ? "," : "", strchr(cfg->servers[i].host, ':') ? "[" : "", cfg->servers[i].host,
               strchr(cfg->servers[i].host, ':') ? "]" : "", (unsigned)cfg->servers[i].port);
      printf(")\n");
    }
    tn_loop_close_all(&p.loop);
    tc_client_free(&p.client);
    uv_loop_close(&p.loop);
    return rc;
  }
  if (p.client.cfg.debug_log)
    tn_log_set_level(TN_LOG_DEBUG);
  p.client.on_stopped = on_stopped;

  tn_loop_signals_start(&p.loop, &p.signals, on_signal, &p);

  tc_client_start(&p.client);
  uv_run(&p.loop, UV_RUN_DEFAULT);
  tn_loop_close_all(&p.loop);
  tc_client_free(&p.client);
  if (uv_loop_close(&p.loop) != 0)
    tn_log_warn("client: event loop closed with handles still open");
  tn_log_info("client %s: stopped", p.client.identity);
  return 0;
}
