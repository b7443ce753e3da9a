/*
 * hostile_client: a tunnelc impostor for tests/integration/harden_control.sh. It holds a valid
 * client certificate, completes the mTLS handshake with tn_tls over a blocking socket, then
 * misbehaves on the mux. Frames are written by hand (tn_frame_encode) rather than through tn_mux,
 * because the point is to send what a correct session never would.
 *
 *   hostile_client --port P --ca CA --cert CRT --key KEY --mode MODE [--count N] [--seconds S]
 *
 * Modes (each prints one "result:" line with what the server did; exit 0 unless the tool itself failed):
 *   silent           TLS up, then never a mux byte and never an answer to pings. Waits up to S seconds
 *                    for the server to close; prints "closed_after_ms=N" or "still_open".
 *   many-streams     opens N streams (SYN) as fast as it can while reading and answering pings; counts
 *                    the server's resets and whether it closed the link.
 *   window-overflow  waits for a stream the server opens (a public user must connect), acknowledges it,
 *                    then sends window updates that overflow 32 bits; prints "closed" or "still_open".
 *   never-read       acknowledges the streams the server opens until N are open, opens N of its own,
 *                    then stops reading the socket for S seconds while still sending pings;
 *                    prints whether the server kept or dropped the link.
 *   reset-flood      acknowledges the first stream the server opens, prints "acked", waits for the server
 *                    to reset it (its public user went away), then keeps sending Data frames on it as fast
 *                    as it can for up to S seconds; prints "closed" (with the bytes sent and the GoAway
 *                    code, -1 when none came) or "still_open".
 *   open-header      reads the stream-open header of the first stream the server opens (a public user must
 *                    connect) and prints "version=N authority=NAME backend=PORT|SERVICE proxy=V" (docs/PROTOCOL.md 8),
 *                    or "no_header". With --alpn NAME the handshake offers that application protocol (tunnelc
 *                    offers "tunnel/2"); without it the tool is a tunnelc that predates ALPN.
 *   control-message  opens stream 1 and sends the bytes of --message HEX on it with FIN (a control message,
 *                    docs/PROTOCOL.md 8a), then reads for up to S seconds; prints "answered_fin" (the server
 *                    took it and kept the link), "reset" or "closed go_away=N". With --size N the message is
 *                    --message followed by zeros up to N bytes, sent in 16 KiB frames within the stream's window.
 *   control-flood    sends --message (a control message) N times (--count), each on a new stream with FIN, at
 *                    most 4 unanswered at once (the receiver's limit), for up to S seconds; prints
 *                    "sent=N answered=M" (FIN or RST back), or "closed go_away=N" when the server ended the link.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tunnel/error.h"
#include "tunnel/frame.h"
#include "tunnel/open.h"
#include "tunnel/tls.h"

#define IN_CAP (256u * 1024u)

struct hc {
  int fd;
  tn_tls *tls;
  uint8_t plain[IN_CAP];   /* decrypted mux bytes not yet parsed */
  size_t plain_len;
  int closed;              /* EOF, TLS error or GoAway from the server */
  uint64_t resets_in, syns_in, pings_in, go_away_in, frames_in;
  uint32_t last_syn_id;
  uint32_t last_reset_id;
  uint32_t last_fin_id;
  uint64_t odd_answers;    /* FIN or RST on client-opened streams: control messages answered */
  uint64_t credit1;        /* window the server granted stream 1 beyond the initial one */
  long go_away_code;       /* -1 until a GoAway arrives */
  uint32_t first_stream;   /* the first stream the server opened, and the start of its data */
  uint8_t first_data[TN_OPEN_MAX_LEN];
  size_t first_data_len;
};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what)
{
  fprintf(stderr, "hostile_client: %s\n", what);
  exit(2);
}

/* Writes all pending ciphertext; returns -1 once the socket is gone. */
static int flush_out(struct hc *h)
{
  const uint8_t *p;
  size_t n;

  while ((n = tn_tls_pending(h->tls, &p)) > 0) {
    ssize_t w = send(h->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      h->closed = 1;
      return -1;
    }
    tn_tls_consumed(h->tls, (size_t)w);
  }
  return 0;
}

static int send_plain(struct hc *h, const uint8_t *data, size_t len)
{
  while (len > 0) {
    long n = tn_tls_write(h->tls, data, len);
    if (n < 0)
      return -1;
    if (n == 0 && flush_out(h) != 0)
      return -1;
    data += n;
    len -= (size_t)n;
  }
  return flush_out(h);
}

static int send_frame(struct hc *h, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
  struct tn_frame_header f = { TN_FRAME_VERSION, type, flags, id, length };
  uint8_t b[TN_FRAME_HEADER_LEN];

  tn_frame_encode(&f, b, sizeof(b));
  return send_plain(h, b, sizeof(b));
}

/* Parses complete frames in h->plain; answers pings when asked to. */
static void parse_frames(struct hc *h, int answer_pings)
{
  size_t off = 0;

  for (;;) {
    struct tn_frame_header f;
    size_t need;
    if (tn_frame_decode(&f, h->plain + off, h->plain_len - off) != TN_FRAME_HEADER_LEN)
      break;
    need = TN_FRAME_HEADER_LEN + (f.type == TN_FRAME_DATA ? f.length : 0);
    if (h->plain_len - off < need)
      break;
    off += need;
    h->frames_in++;
    if (f.flags & TN_FLAG_RST) {
      h->resets_in++;
      h->last_reset_id = f.stream_id;
    }
    if ((f.flags & TN_FLAG_FIN) && f.type != TN_FRAME_PING)
      h->last_fin_id = f.stream_id;
    if ((f.flags & (TN_FLAG_FIN | TN_FLAG_RST)) && f.type != TN_FRAME_PING && (f.stream_id & 1u))
      h->odd_answers++;
    if (f.type == TN_FRAME_WINDOW_UPDATE && f.stream_id == 1)
      h->credit1 += f.length;
    if (f.type == TN_FRAME_GO_AWAY) {
      h->go_away_in++;
      h->go_away_code = (long)f.length;
      h->closed = 1;
    }
    if (f.type == TN_FRAME_PING && (f.flags & TN_FLAG_SYN)) {
      h->pings_in++;
      if (answer_pings)
        send_frame(h, TN_FRAME_PING, TN_FLAG_ACK, 0, f.length);
    }
    if ((f.flags & TN_FLAG_SYN) && f.type != TN_FRAME_PING && f.stream_id != 0) {
      h->syns_in++;
      h->last_syn_id = f.stream_id;
      if (h->first_stream == 0)
        h->first_stream = f.stream_id;
    }
    if (f.type == TN_FRAME_DATA && f.stream_id != 0 && f.stream_id == h->first_stream) {
      size_t room = sizeof(h->first_data) - h->first_data_len, n = f.length < room ? f.length : room;
      memcpy(h->first_data + h->first_data_len, h->plain + off - f.length, n);
      h->first_data_len += n;
    }
  }
  memmove(h->plain, h->plain + off, h->plain_len - off);
  h->plain_len -= off;
}

/* Waits up to timeout_ms for socket input and processes it; returns 1 if something was read. */
static int pump(struct hc *h, int timeout_ms, int answer_pings)
{
  struct pollfd p = { h->fd, POLLIN, 0 };
  uint8_t buf[16384];
  ssize_t n;

  if (h->closed || poll(&p, 1, timeout_ms) <= 0)
    return 0;
  n = recv(h->fd, buf, sizeof(buf), 0);
  if (n <= 0) {
    h->closed = 1;
    return 0;
  }
  for (size_t off = 0; off < (size_t)n;)
    off += tn_tls_feed(h->tls, buf + off, (size_t)n - off);  /* the buffer is drained below */
  for (;;) {
    long r = tn_tls_read(h->tls, h->plain + h->plain_len, IN_CAP - h->plain_len);
    if (r == TN_ERR_NEED_MORE)
      break;
    if (r <= 0) {
      h->closed = 1;
      break;
    }
    h->plain_len += (size_t)r;
    parse_frames(h, answer_pings);
    if (h->plain_len == IN_CAP)
      h->plain_len = 0;  /* a huge data frame: its contents do not matter here */
  }
  return 1;
}

static void connect_tls(struct hc *h, int port, const char *ca, const char *crt, const char *key, const char *alpn)
{
  const char *alpn_list[2] = { alpn, NULL };
  struct sockaddr_in sa = { 0 };
  tn_tls_config *cfg;
  char err[256];
  int one = 1;

  if (tn_tls_config_new(&cfg, TN_TLS_CLIENT, ca, crt, key, err, sizeof(err)) != TN_OK)
    die(err);
  if (alpn != NULL && tn_tls_config_set_alpn(cfg, alpn_list) != TN_OK)
    die("tn_tls_config_set_alpn");
  if (tn_tls_new(&h->tls, cfg, "127.0.0.1") != TN_OK)
    die("tn_tls_new");
  tn_tls_config_unref(cfg);
  h->fd = socket(AF_INET, SOCK_STREAM, 0);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    die("connect");
  setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (;;) {
    int r = tn_tls_handshake(h->tls);
    uint8_t buf[16384];
    ssize_t n;
    if (flush_out(h) != 0)
      die("connection closed during the handshake");
    if (r == TN_OK)
      break;
    if (r != TN_ERR_NEED_MORE)
      die(tn_tls_error_text(h->tls));
    n = recv(h->fd, buf, sizeof(buf), 0);
    if (n <= 0)
      die("connection closed during the handshake");
    for (size_t off = 0; off < (size_t)n;) {
      size_t k = tn_tls_feed(h->tls, buf + off, (size_t)n - off);
      off += k;
      if (k == 0 && tn_tls_handshake(h->tls) == TN_ERR_TLS)
        die(tn_tls_error_text(h->tls));
    }
  }
}

int main(int argc, char **argv)
{
  const char *ca = NULL, *crt = NULL, *key = NULL, *mode = NULL, *message = "", *alpn = NULL;
  int port = 0, count = 1000, seconds = 10, size = 0, c;
  struct hc *h = calloc(1, sizeof(*h));
  static const struct option opts[] = {
    { "port", 1, 0, 'p' }, { "ca", 1, 0, 'a' }, { "cert", 1, 0, 'c' }, { "key", 1, 0, 'k' },
    { "mode", 1, 0, 'm' }, { "count", 1, 0, 'n' }, { "seconds", 1, 0, 's' }, { "message", 1, 0, 'x' },
    { "alpn", 1, 0, 'l' }, { "size", 1, 0, 'z' }, { 0, 0, 0, 0 }
  };
  uint64_t t0, deadline;

  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'p': port = atoi(optarg); break;
    case 'a': ca = optarg; break;
    case 'c': crt = optarg; break;
    case 'k': key = optarg; break;
    case 'm': mode = optarg; break;
    case 'n': count = atoi(optarg); break;
    case 's': seconds = atoi(optarg); break;
    case 'x': message = optarg; break;
    case 'l': alpn = optarg; break;
    case 'z': size = atoi(optarg); break;
    default: die("bad option");
    }
  }
  if (h == NULL || !port || !ca || !crt || !key || !mode)
    die("usage: hostile_client --port P --ca CA --cert CRT --key KEY --mode MODE [--count N] [--seconds S] "
        "[--message HEX] [--alpn NAME]");
  signal(SIGPIPE, SIG_IGN);
  h->go_away_code = -1;
  connect_tls(h, port, ca, crt, key, alpn);
  t0 = now_ms();
  deadline = t0 + (uint64_t)seconds * 1000u;
  printf("established alpn=%s\n", tn_tls_alpn(h->tls)[0] != '\0' ? tn_tls_alpn(h->tls) : "none");
  fflush(stdout);

  if (strcmp(mode, "silent") == 0) {
    /* Reads (so the server's pings are seen) but never answers anything. */
    while (!h->closed && now_ms() < deadline)
      pump(h, 100, 0);
    if (h->closed)
      printf("result: closed_after_ms=%llu pings_seen=%llu\n", (unsigned long long)(now_ms() - t0),
             (unsigned long long)h->pings_in);
    else
      printf("result: still_open\n");
  } else if (strcmp(mode, "many-streams") == 0) {
    int sent = 0;
    uint32_t id = 1;
    while (!h->closed && sent < count) {
      if (send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, id, 0) != 0)
        break;
      id += 2;
      sent++;
      while (pump(h, 0, 1)) {
      }
    }
    /* Keeps the link alive afterwards so the server shows whether it still serves it. */
    while (!h->closed && now_ms() < deadline)
      pump(h, 100, 1);
    printf("result: sent=%d resets=%llu link=%s\n", sent, (unsigned long long)h->resets_in,
           h->closed ? "closed" : "open");
  } else if (strcmp(mode, "window-overflow") == 0) {
    while (!h->closed && h->syns_in == 0 && now_ms() < deadline)
      pump(h, 100, 1);
    if (h->syns_in == 0)
      die("the server opened no stream");
    send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_ACK, h->last_syn_id, 0);
    send_frame(h, TN_FRAME_WINDOW_UPDATE, 0, h->last_syn_id, 0xFFFFFFF0u);
    send_frame(h, TN_FRAME_WINDOW_UPDATE, 0, h->last_syn_id, 0xFFFFFFF0u);
    while (!h->closed && now_ms() < deadline)
      pump(h, 100, 1);
    printf("result: %s resets=%llu\n", h->closed ? "closed" : "still_open", (unsigned long long)h->resets_in);
  } else if (strcmp(mode, "never-read") == 0) {
    uint64_t acked = 0, next_ping = 0;
    uint32_t id = 1;
    int lost = 0;
    while (!h->closed && acked < (uint64_t)count && now_ms() < deadline) {
      pump(h, 100, 1);
      while (acked < h->syns_in) {
        /* The stream ids are even and consecutive from the server's first. */
        send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_ACK, h->last_syn_id - 2u * (uint32_t)(h->syns_in - 1 - acked), 0);
        acked++;
      }
    }
    for (int i = 0; i < count && !h->closed; i++, id += 2)
      send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, id, 0);
    printf("streams_acked=%llu; no longer reading\n", (unsigned long long)acked);
    fflush(stdout);
    /* Never reads again: only writes pings, so the server sees a live but unreading peer. */
    while (now_ms() < deadline) {
      if (now_ms() >= next_ping) {
        if (send_frame(h, TN_FRAME_PING, TN_FLAG_SYN, 0, 7) != 0) {
          lost = 1;
          break;
        }
        next_ping = now_ms() + 250;
      }
      usleep(50000);
    }
    printf("result: link=%s after_ms=%llu\n", lost ? "dropped" : "kept", (unsigned long long)(now_ms() - t0));
  } else if (strcmp(mode, "reset-flood") == 0) {
    static const uint8_t zeros[16384];
    uint64_t sent = 0;
    uint32_t id;
    while (!h->closed && h->syns_in == 0 && now_ms() < deadline)
      pump(h, 100, 1);
    if (h->syns_in == 0)
      die("the server opened no stream");
    id = h->last_syn_id;
    send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_ACK, id, 0);
    printf("acked stream %u\n", id);
    fflush(stdout);
    while (!h->closed && !(h->resets_in > 0 && h->last_reset_id == id) && now_ms() < deadline)
      pump(h, 100, 1);
    if (h->closed || h->last_reset_id != id)
      die("the server never reset the stream");
    printf("stream %u reset by the server; flooding it\n", id);
    fflush(stdout);
    /* What the issue saw: the server took gigabytes for a stream it had reset, without a word. */
    while (!h->closed && now_ms() < deadline) {
      if (send_frame(h, TN_FRAME_DATA, 0, id, sizeof(zeros)) != 0 || send_plain(h, zeros, sizeof(zeros)) != 0)
        break;
      sent += sizeof(zeros);
      while (pump(h, 0, 1)) {
      }
    }
    /* A failed send marks the link closed before the server's GoAway was read: read what is left. */
    int ended = h->closed;
    h->closed = 0;
    for (int i = 0; i < 20 && h->go_away_in == 0 && !h->closed; i++)
      pump(h, 100, 1);
    if (ended || h->closed)
      printf("result: closed sent_bytes=%llu go_away=%ld\n", (unsigned long long)sent, h->go_away_code);
    else
      printf("result: still_open sent_bytes=%llu\n", (unsigned long long)sent);
  } else if (strcmp(mode, "open-header") == 0) {
    struct tn_open o;
    int r = TN_ERR_NEED_MORE;

    while (!h->closed && now_ms() < deadline &&
           (r = tn_open_decode(&o, h->first_data, h->first_data_len)) == TN_ERR_NEED_MORE)
      pump(h, 100, 1);
    if (r > 0)
      printf("result: version=%u authority=%s backend=%s%u proxy=%u\n", h->first_data[0],
             o.authority[0] != '\0' ? o.authority : "none", o.service, (unsigned)o.backend_port, o.proxy_version);
    else
      printf("result: no_header (%s)\n", tn_strerror(r));
  } else if (strcmp(mode, "control-message") == 0 || strcmp(mode, "control-flood") == 0) {
    size_t cap = size > 4096 ? (size_t)size : 4096, n = 0;
    uint8_t *msg = calloc(1, cap);
    if (msg == NULL)
      die("out of memory");
    for (const char *x = message; x[0] && x[1] && n < cap; x += 2) {
      unsigned v;
      if (sscanf(x, "%2x", &v) != 1)
        die("--message: bad hex");
      msg[n++] = (uint8_t)v;
    }
    if ((size_t)size > n)
      n = (size_t)size;
    if (strcmp(mode, "control-flood") == 0) {
      uint64_t sent = 0;
      uint32_t id = 1;
      while (!h->closed && sent < (uint64_t)count && now_ms() < deadline) {
        if (sent - h->odd_answers >= 4) {
          pump(h, 100, 1);
          continue;
        }
        send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, id, 0);
        send_frame(h, TN_FRAME_DATA, TN_FLAG_FIN, id, (uint32_t)n);
        send_plain(h, msg, n);
        id += 2;
        sent++;
        while (pump(h, 0, 1)) {
        }
      }
      for (uint64_t end = now_ms() + 5000; !h->closed && h->odd_answers < sent && now_ms() < end;)
        pump(h, 100, 1);
      if (h->closed)
        printf("result: closed go_away=%ld sent=%llu\n", h->go_away_code, (unsigned long long)sent);
      else
        printf("result: sent=%llu answered=%llu\n", (unsigned long long)sent, (unsigned long long)h->odd_answers);
      if (n == 0)
      send_frame(h, TN_FRAME_DATA, TN_FLAG_FIN, 1, 0);
    free(msg);
      fflush(stdout);
      tn_tls_del(h->tls);
      close(h->fd);
      free(h);
      return 0;
    }
    send_frame(h, TN_FRAME_WINDOW_UPDATE, TN_FLAG_SYN, 1, 0);
    /* Within the stream's window (256 KiB, then what the server grants): the length is the offence, not the window. */
    for (size_t off = 0; off < n && !h->closed;) {
      size_t chunk = n - off < 16384 ? n - off : 16384;
      if (off + chunk > 262144u + h->credit1) {
        if (now_ms() >= deadline)
          break;
        pump(h, 100, 1);
        continue;
      }
      send_frame(h, TN_FRAME_DATA, off + chunk == n ? TN_FLAG_FIN : 0, 1, (uint32_t)chunk);
      send_plain(h, msg + off, chunk);
      off += chunk;
      while (pump(h, 0, 1)) {
      }
    }
    free(msg);
    while (!h->closed && h->last_fin_id != 1 && h->last_reset_id != 1 && now_ms() < deadline)
      pump(h, 100, 1);
    /* A server that ends the link may still be flushing its GoAway: read on briefly. */
    for (int i = 0; i < 10 && !h->closed && h->last_fin_id == 1; i++)
      pump(h, 100, 1);
    if (h->closed)
      printf("result: closed go_away=%ld\n", h->go_away_code);
    else if (h->last_fin_id == 1)
      printf("result: answered_fin\n");
    else if (h->last_reset_id == 1)
      printf("result: reset\n");
    else
      printf("result: no_answer\n");
  } else {
    die("unknown mode");
  }
  fflush(stdout);
  tn_tls_del(h->tls);
  close(h->fd);
  free(h);
  return 0;
}
