/* tunnel/defaults.h: every default limit and timeout of both programs, in one place (documented in docs/CONFIG.md). */
#ifndef TUNNEL_DEFAULTS_H
#define TUNNEL_DEFAULTS_H

/* Ports */
#define TN_DEFAULT_CONTROL_PORT 9056
#define TN_DEFAULT_MANAGEMENT_PORT 9057

/* Link (one mTLS + mux connection between tunnelc and tunneld) */
#define TN_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u   /* TLS handshake must finish within this */
#define TN_DEFAULT_KEEPALIVE_INTERVAL_MS 5000u   /* ping after this much receive silence */
#define TN_DEFAULT_DEAD_PEER_TIMEOUT_MS 15000u   /* drop a link silent this long */
#define TN_DEFAULT_STREAM_OPEN_TIMEOUT_MS 10000u /* a stream the peer never acknowledges is reset */
#define TN_DEFAULT_MAX_STREAMS_PER_LINK 8192u
#define TN_DEFAULT_INITIAL_WINDOW (256u * 1024u) /* yamux's fixed initial window */
#define TN_DEFAULT_MAX_WINDOW (16u * 1024u * 1024u)
#define TN_DEFAULT_MAX_FRAME_PAYLOAD (16u * 1024u)
#define TN_DEFAULT_LINK_OUTPUT_BUFFER (1024u * 1024u) /* plaintext queued for one link before writers wait */
#define TN_DEFAULT_REPLACED_LINK_GRACE_MS 30000u /* a replaced link's streams may finish within this */

/* Splicing one stream to one socket */
/* Held socket bytes the stream cannot take yet: stop reading above the high mark, resume at the low. The
 * defaults keep a pipe to about one read (64 KiB) ahead of its stream, as pipes always did: with 256 KiB held
 * per pipe, 64 parallel bulk downloads on an ASan build starved the link past a 2 s dead-peer timeout. */
#define TN_DEFAULT_PIPE_HIGH_WATER 4096u
#define TN_DEFAULT_PIPE_LOW_WATER 0u
#define TN_DEFAULT_DRAIN_TIMEOUT_MS 10000u        /* SIGTERM or tunnel removal: open connections may finish within this */

/* tunneld */
#define TN_DEFAULT_MAX_CONNECTIONS_PER_TUNNEL 4096u
#define TN_DEFAULT_MAX_CONNECTIONS_PER_CLIENT 16384u
#define TN_DEFAULT_MAX_PUBLIC_CONNECTIONS_PER_SOURCE 256u /* per public port, per IPv4 address or IPv6 /64 */
#define TN_DEFAULT_MAX_PENDING_HANDSHAKES 512u   /* control + management ports together */
#define TN_DEFAULT_TAKEOVER_PING_TIMEOUT_MS 1000u /* a connected identity answering a ping this fast keeps its link */
#define TN_DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE 8u /* per port, per IPv4 address or IPv6 /64 */
#define TN_DEFAULT_API_MAX_NON_ADMIN_PER_SOURCE 4u  /* management sessions without an admin certificate */
#define TN_DEFAULT_API_MAX_NON_ADMIN_PER_IDENTITY 4u
#define TN_DEFAULT_MAX_TUNNELS 4096u
#define TN_DEFAULT_MAX_BACKUPS_PER_TUNNEL 16u
#define TN_DEFAULT_API_MAX_BODY (1024u * 1024u)
#define TN_DEFAULT_API_MAX_HEADER (16u * 1024u)
#define TN_DEFAULT_API_HEADER_TIMEOUT_MS 10000u  /* whole request head must arrive within this */
#define TN_DEFAULT_HOSTNAME_TIMEOUT_MS 5000u     /* a hostname-routed connection names its host within this */
#define TN_DEFAULT_API_IDLE_TIMEOUT_MS 60000u    /* keep-alive connection closed after this idle time */
#define TN_DEFAULT_API_MAX_CONNECTIONS 64u
#define TN_DEFAULT_STATE_FILE "/var/lib/tunnel/tunnels.json"
#define TN_DEFAULT_SERVER_CONFIG "/etc/tunnel/tunneld.json"

/* tunnelc */
#define TN_DEFAULT_DIAL_TIMEOUT_MS 5000u          /* backend connect */
#define TN_DEFAULT_RECONNECT_MIN_MS 500u
#define TN_DEFAULT_RECONNECT_MAX_MS 30000u
#define TN_DEFAULT_RECONNECT_JITTER_PERCENT 20u
#define TN_DEFAULT_RECONNECT_RESET_AFTER_MS 30000u /* a link up this long resets the backoff */
#define TN_DEFAULT_CLIENT_CONFIG "/etc/tunnel/tunnelc.json"

#endif
