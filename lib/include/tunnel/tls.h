/* tunnel/tls.h: sans-I/O mutually authenticated TLS 1.2/1.3 (mbedTLS over memory buffers) for the tunnel link and the management port. */
#ifndef TUNNEL_TLS_H
#define TUNNEL_TLS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Shape, like tn_mux: a tn_tls owns no socket and no clock.
 *   - tn_tls_feed()        hands it ciphertext that arrived from the peer (bounded: it
 *                          accepts what fits and returns how much; feed the rest after
 *                          draining plaintext with tn_tls_read);
 *   - tn_tls_pending()     shows ciphertext it wants sent, tn_tls_consumed() says how much was sent;
 *   - tn_tls_handshake()   drives the handshake; call it after every feed until TN_OK;
 *   - tn_tls_read/write()  move plaintext once the handshake is done.
 *
 * A typical loop on the caller's side (the libuv link):
 *   on socket data:  while (len) { n = tn_tls_feed(t, p, len); p += n; len -= n;
 *                                   if handshaking: tn_tls_handshake(t);
 *                                   then: while ((r = tn_tls_read(t, buf, cap)) > 0) use(buf, r); }
 *                    then send tn_tls_pending() if any.
 *   on app data:     n = tn_tls_write(t, data, len); send tn_tls_pending(); if n < len,
 *                    retry the rest once some output was consumed.
 *   on socket EOF:   tn_tls_eof(t); then tn_tls_handshake/tn_tls_read report how it ended.
 *
 * Handshake timeout: tn_tls has no clock. The caller arms a timer when the TCP connection
 * is established and frees the context if tn_tls_handshake() has not returned TN_OK within
 * TN_TLS_HANDSHAKE_TIMEOUT_MS (the documented default; a config may override it).
 *
 * Error line (see tunnel/error.h): TN_ERR_TLS is returned by tn_tls_handshake when the
 * handshake fails; TN_ERR_TLS_FATAL by read/write afterwards. Both are final: the context
 * only serves tn_tls_pending/tn_tls_consumed (to flush the alert already queued),
 * tn_tls_error_text and tn_tls_del. tn_tls_error_text() then says why in plain words
 * ("certificate expired", "unknown CA", "hostname mismatch", ...), never a key or raw code.
 *
 * Threading: a config and its contexts belong to one thread (the event loop). The config
 * refcount is not atomic.
 *
 * Policy (not configurable on purpose): TLS 1.2 at least; TLS 1.3 too when built on
 * mbedTLS 3.x with it (both ends must have it; it also encrypts the certificates on the
 * wire). TLS 1.2 suites: ECDHE-ECDSA / ECDHE-RSA with CHACHA20-POLY1305 first, then
 * AES-128-GCM and AES-256-GCM; TLS 1.3 suites: the same three AEADs with (EC)DHE. No
 * renegotiation, no compression, no session tickets or resumption. Both sides verify the peer's chain
 * against the configured CA bundle. The server requires a client certificate whose
 * extended key usage (when present) allows clientAuth; the client requires serverAuth and
 * checks the server's name: a DNS name against dNSName SANs (or the CN without SANs), an
 * IPv4/IPv6 literal against iPAddress SANs (tn_tls does it itself: mbedTLS 2.28 cannot).
 *
 * Trust (both roles): the peer's leaf must chain to a certificate of the CA file through
 * certificates of the CA file only; intermediates the peer sends add no trust. The leaf
 * must not be a CA (basicConstraints CA:TRUE). A server also requires the client's subject
 * to name one identity (tn_tls_cn_check). Optional: CRLs (tn_tls_config_set_crl) and a
 * deny hook (tn_tls_config_set_peer_check), both checked at every handshake.
 */

#define TN_TLS_HANDSHAKE_TIMEOUT_MS 10000u
/* Ciphertext input buffer: two full records, so the next record always fits beside the one being read. */
#define TN_TLS_INPUT_CAP (2u * (16384u + 2048u + 5u))
/* Ciphertext output queue: eight full records (about 130 KiB). */
#define TN_TLS_OUTPUT_CAP (8u * (16384u + 256u))
/* Largest plaintext put in one record. */
#define TN_TLS_MAX_RECORD_PLAINTEXT 16384u

typedef struct tn_tls_config tn_tls_config;
typedef struct tn_tls tn_tls;

enum tn_tls_role {
  TN_TLS_CLIENT = 1,
  TN_TLS_SERVER = 2
};

/* Identity of a verified peer certificate (the leaf). */
#define TN_TLS_CN_MAX 65        /* the identity limit: 64 bytes of UTF-8 (X.520's bound, in bytes), plus NUL */
#define TN_TLS_SANS_MAX 512
struct tn_tls_peer {
  /*
   * Subject commonName. For a client verified by a server it is exactly the certificate's
   * bytes (tn_tls_cn_check refused anything else at the handshake). Elsewhere (own or
   * server certificates, tools) a name that would fail that check is shown escaped
   * (tn_utf8_escape: "\u{202e}", "\xff"), cut to fit, so it is always printable UTF-8 and
   * never mistaken for a valid name; "" when absent.
   */
  char cn[TN_TLS_CN_MAX];
  char sha256_hex[65];          /* SHA-256 of the leaf certificate DER: 64 lowercase hex digits, no colons */
  char sans[TN_TLS_SANS_MAX];   /* "DNS:a.example,IP:127.0.0.1" (truncated with "..." if longer) */
  int64_t not_before;           /* validity, Unix seconds UTC */
  int64_t not_after;
};

/*
 * One input of a configuration: the bytes of a PEM or DER file, with a NUL after the last byte
 * (data[len] == 0: PEM parsers want it), and its name for messages (the file's path).
 */
struct tn_tls_input {
  const char *name;
  const unsigned char *data;
  size_t len;
};

/*
 * tn_tls_config_new without files: the same checks and messages over bytes the caller read
 * (tls_file.c reads them for tn_tls_config_new), except the role rule (tn_tls_config_role_check).
 */
int tn_tls_config_new_mem(tn_tls_config **out, enum tn_tls_role role, const struct tn_tls_input *ca,
                          const struct tn_tls_input *cert, const struct tn_tls_input *key, char *err, size_t err_len);
/* tn_tls_config_set_crl over bytes the caller read. */
int tn_tls_config_set_crl_mem(tn_tls_config *cfg, const struct tn_tls_input *crl, char *err, size_t err_len);
/* False when the own certificate does not fit its role (tn_tls_config_role_check). */
int tn_tls_config_usage_ok(const tn_tls_config *cfg);
/*
 * The role rule (docs/PKI.md, "Roles") on the own certificate: a server's needs extended key usage serverAuth
 * and a DNS or IP subjectAltName, a client's clientAuth; one without extended key usage fits neither.
 * TN_OK, or TN_ERR_INVALID with why ("it has no extended key usage (...)"). tn_tls_config_new refuses such a
 * certificate; tn_tls_config_new_mem loads it (tests make peers of the wrong role with it) and leaves the
 * question to this function.
 */
int tn_tls_config_role_check(const tn_tls_config *cfg, char *why, size_t why_len);

/* The file side (lib/tls_file.c, libuv adapter layer: it reads files and logs): */
/*
 * Loads a config from PEM (or DER) files:
 *   ca_file    trusted CA certificates (a bundle is fine) used to verify the peer;
 *   cert_file  own certificate chain, leaf first;
 *   key_file   the leaf's unencrypted private key: ECDSA (P-256, P-384) or RSA of 2048 bits or more.
 * Checks that the key matches the certificate and that the certificate fits the role
 * (tn_tls_config_role_check). On failure returns TN_ERR_INVALID (or TN_ERR_NOMEM / TN_ERR_ARG)
 * and writes a line into err naming the file and the reason, e.g.
 * "/etc/tunnel/ca.pem: no certificate found". The result starts with one reference.
 */
int tn_tls_config_new(tn_tls_config **out, enum tn_tls_role role, const char *ca_file,
                      const char *cert_file, const char *key_file, char *err, size_t err_len);
/*
 * Adds certificate revocation lists from crl_file (one or more PEM CRLs, or DER CRLs one
 * after another, as `openssl ca -gencrl` writes them). Every CRL must be issued and signed
 * by a certificate of the CA file and must not be past its nextUpdate (an expired CRL would
 * make mbedTLS refuse every certificate of its CA). Call before the first tn_tls_new.
 * TN_OK, or TN_ERR_INVALID / TN_ERR_NOMEM with err naming the file and the CRL.
 */
int tn_tls_config_set_crl(tn_tls_config *cfg, const char *crl_file, char *err, size_t err_len);

/*
 * A deny hook, asked at every handshake (and by tn_tls_recheck) about the peer's verified
 * leaf: returning nonzero refuses it as revoked, with why (one line) for the error text.
 * fn may be NULL (no hook). ctx must outlive the config's connections.
 */
typedef int (*tn_tls_peer_check_fn)(void *ctx, const struct tn_tls_peer *peer, char *why, size_t why_len);
void tn_tls_config_set_peer_check(tn_tls_config *cfg, tn_tls_peer_check_fn fn, void *ctx);

/*
 * The application protocols (ALPN, RFC 7301) a client offers or a server accepts, most preferred first: a
 * NULL-terminated list in static storage. Without a list a server ignores what clients offer; with one, a client
 * that offers only other names is refused (so a client offers every protocol it speaks). Call before the first
 * tn_tls_new. TN_OK, or TN_ERR_UNSUPPORTED when the mbedTLS build lacks ALPN.
 */
int tn_tls_config_set_alpn(tn_tls_config *cfg, const char *const *protocols);

/* Takes one more reference (each tn_tls holds one, so a reload never disturbs live links). */
void tn_tls_config_ref(tn_tls_config *cfg);
/* Drops one reference; the last one frees the config. NULL is ignored. */
void tn_tls_config_unref(tn_tls_config *cfg);
enum tn_tls_role tn_tls_config_role(const tn_tls_config *cfg);
/* Identity of this side's own certificate (the leaf of cert_file): CN, SANs, fingerprint. */
int tn_tls_config_identity(const tn_tls_config *cfg, struct tn_tls_peer *own);
/* TN_OK when this side's own certificate names one identity a server accepts (as tn_tls_cn_check), else TN_ERR_INVALID with why. */
int tn_tls_config_identity_check(const tn_tls_config *cfg, char *why, size_t why_len);

/*
 * Creates a connection. For a client, server_name is the name the server certificate must
 * carry (the ServerHost, or an explicit override): a DNS name (also sent as SNI) or an IP
 * literal; it is required. For a server it must be NULL. Returns TN_OK, TN_ERR_ARG, TN_ERR_NOMEM.
 * A client has its ClientHello pending right after creation (tn_tls_handshake starts it).
 */
int tn_tls_new(tn_tls **out, tn_tls_config *cfg, const char *server_name);
/* Frees the connection (without sending anything) and drops its config reference. NULL is ignored. */
void tn_tls_del(tn_tls *t);

/*
 * Copies ciphertext from the peer into the bounded input buffer. Returns the bytes accepted
 * (0..len): 0 means the buffer is full, so call tn_tls_handshake / tn_tls_read to drain it
 * first. After tn_tls_eof nothing more is accepted.
 */
size_t tn_tls_feed(tn_tls *t, const uint8_t *in, size_t len);
/* The transport reached EOF: no more ciphertext will come. */
void tn_tls_eof(tn_tls *t);

/*
 * Advances the handshake with the bytes fed so far. Returns TN_OK once it is complete
 * (and on every later call), TN_ERR_NEED_MORE while it waits for the peer (send what
 * tn_tls_pending shows), or TN_ERR_TLS (final; see tn_tls_error_text).
 * Bytes fed together with the last handshake message may already hold application data:
 * call tn_tls_read right after TN_OK.
 */
int tn_tls_handshake(tn_tls *t);
/* True once the handshake completed. */
int tn_tls_is_established(const tn_tls *t);

/*
 * Decrypts into out. Returns the plaintext byte count (> 0), TN_ERR_NEED_MORE when no
 * complete record is buffered (feed more), 0 once the peer sent close_notify (the other
 * direction may still be written), or TN_ERR_TLS_FATAL (final). A record larger than cap
 * is delivered over several calls: loop until TN_ERR_NEED_MORE. Returns TN_ERR_ARG before
 * the handshake completed.
 */
long tn_tls_read(tn_tls *t, uint8_t *out, size_t cap);

/*
 * Every call ends at least one record, and a record costs 21-29 bytes and one AEAD setup:
 * hand over everything there is at once (e.g. the whole of tn_mux_pending), not frame by frame.
 *
 * Encrypts up to len bytes, at most TN_TLS_MAX_RECORD_PLAINTEXT per record, into the output
 * queue. Returns the bytes accepted (0..len; 0 when the queue is full: send and consume
 * pending output, then retry), TN_ERR_ARG before the handshake or after tn_tls_close_notify,
 * or TN_ERR_TLS_FATAL.
 */
long tn_tls_write(tn_tls *t, const uint8_t *in, size_t len);

/*
 * Points *out at ciphertext waiting to be sent and returns its length (0 = nothing).
 * The bytes stay in place, unchanged, until tn_tls_consumed: a caller may hand them to
 * an asynchronous write and keep calling tn_tls_write/read meanwhile (which only append).
 */
size_t tn_tls_pending(tn_tls *t, const uint8_t **out);
/* Marks n bytes of tn_tls_pending as sent; may move what remains, so call tn_tls_pending again. */
void tn_tls_consumed(tn_tls *t, size_t n);

/* Queues a close_notify alert; later writes return TN_ERR_ARG. Returns TN_OK or TN_ERR_NO_SPACE (drain and retry). */
int tn_tls_close_notify(tn_tls *t);
/* True once the peer's close_notify was read. */
int tn_tls_peer_closed(const tn_tls *t);

/* Why the last TN_ERR_TLS / TN_ERR_TLS_FATAL happened; "" when nothing failed. Never NULL. */
const char *tn_tls_error_text(const tn_tls *t);

/* The verified peer's identity; TN_ERR_ARG before the handshake completed (or without a peer certificate). */
int tn_tls_peer_identity(const tn_tls *t, struct tn_tls_peer *peer);
/*
 * Verifies an established connection's peer certificate again, against cfg (a reloaded CA
 * file, new CRLs, the deny hook, the validity period now): the leaf alone, as at a
 * handshake. TN_OK when it still passes; TN_ERR_INVALID with why when it would now be
 * refused; TN_ERR_ARG without an established peer.
 */
int tn_tls_recheck(const tn_tls *t, const tn_tls_config *cfg, char *why, size_t why_len);

/* Name of the negotiated ciphersuite (for logs), or "" before the handshake. */
const char *tn_tls_ciphersuite(const tn_tls *t);

/* 1 when this build can negotiate TLS 1.3 (mbedTLS 3.x built with it), else 0 (TLS 1.2 only). */
int tn_tls_has_tls13(void);

/* The negotiated protocol version ("TLSv1.2", "TLSv1.3") for logs, or "" before the handshake. */
const char *tn_tls_version(const tn_tls *t);

/* The application protocol both sides agreed on (tn_tls_config_set_alpn), or "" for none or before the handshake. */
const char *tn_tls_alpn(const tn_tls *t);

/* Fills peer from a DER certificate (no verification); for tools that show certificates. TN_OK or TN_ERR_INVALID. */
int tn_tls_identity_from_der(const uint8_t *der, size_t len, struct tn_tls_peer *peer);

/*
 * The identity rule for a certificate subject's commonName value (asn1_tag is its ASN.1 string
 * type): UTF8String, PrintableString or IA5String; 1-64 bytes; valid UTF-8 (shortest form,
 * no surrogates); no control characters (C0, DEL, C1); ASCII for the two ASCII types; and not
 * 64 hex digits (that form names a certificate by fingerprint). TN_OK, or TN_ERR_INVALID with
 * why in words ("CN is not valid UTF-8 (byte 0xff at offset 1)"). Never normalises.
 */
int tn_tls_cn_check(const uint8_t *value, size_t len, int asn1_tag, char *why, size_t why_len);

/*
 * Applies the identity rule to a DER certificate: exactly one commonName attribute in the
 * subject (counting multi-valued RDNs), and that value passes tn_tls_cn_check. TN_OK, or
 * TN_ERR_INVALID with why ("certificate has no CN", "certificate has 2 CN attributes", ...).
 */
int tn_tls_identity_check_der(const uint8_t *der, size_t len, char *why, size_t why_len);

/* True when s is a fingerprint in the canonical form: exactly 64 lowercase hex digits. */
int tn_tls_fingerprint_is_canonical(const char *s);

/*
 * Normalises a SHA-256 fingerprint as people write it (any case, with or without colons,
 * e.g. the output of `openssl x509 -fingerprint -sha256`, with or without its "SHA256
 * Fingerprint=" prefix) into 64 lowercase hex digits. TN_OK or TN_ERR_INVALID.
 */
int tn_tls_fingerprint_parse(const char *text, char out[65]);

#endif
