/* test_frame.c: the 12-byte yamux frame header codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel/error.h"
#include "tunnel/frame.h"

/* Byte-exact vectors, written from the yamux spec: version, type, flags BE16, id BE32, length BE32. */
static const struct {
  const char *name;
  struct tn_frame_header h;
  uint8_t wire[TN_FRAME_HEADER_LEN];
} vectors[] = {
  { "data syn", { 0, TN_FRAME_DATA, TN_FLAG_SYN, 1, 5 },
    { 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05 } },
  { "window update ack", { 0, TN_FRAME_WINDOW_UPDATE, TN_FLAG_ACK, 2, 262144 },
    { 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00 } },
  { "ping syn", { 0, TN_FRAME_PING, TN_FLAG_SYN, 0, 0xdeadbeef },
    { 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef } },
  { "go away protocol error", { 0, TN_FRAME_GO_AWAY, 0, 0, TN_GO_AWAY_PROTOCOL_ERROR },
    { 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 } },
  { "data fin rst all bits", { 0, TN_FRAME_DATA, 0xffff, 0xffffffffu, 0xffffffffu },
    { 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
  { "window update fin", { 0, TN_FRAME_WINDOW_UPDATE, TN_FLAG_FIN, 0x01020304, 0x05060708 },
    { 0x00, 0x01, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 } },
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void test_encode_vectors(void **state)
{
  uint8_t out[TN_FRAME_HEADER_LEN + 1];
  size_t i;

  for (i = 0; i < NVECTORS; i++) {
    memset(out, 0xAA, sizeof(out));
    if (tn_frame_encode(&vectors[i].h, out, sizeof(out)) != TN_FRAME_HEADER_LEN ||
        memcmp(out, vectors[i].wire, TN_FRAME_HEADER_LEN) != 0)
      fail_msg("%s: wrong encoding", vectors[i].name);
    assert_int_equal(out[TN_FRAME_HEADER_LEN], 0xAA);
  }
}

static void test_decode_round_trip(void **state)
{
  struct tn_frame_header h;
  uint8_t buf[TN_FRAME_HEADER_LEN + 4];
  size_t i;

  for (i = 0; i < NVECTORS; i++) {
    memset(&h, 0x55, sizeof(h));
    /* Payload after the header is not the decoder's business. */
    memcpy(buf, vectors[i].wire, TN_FRAME_HEADER_LEN);
    memcpy(buf + TN_FRAME_HEADER_LEN, "data", 4);
    if (tn_frame_decode(&h, buf, sizeof(buf)) != TN_FRAME_HEADER_LEN)
      fail_msg("%s: decode failed", vectors[i].name);
    assert_int_equal(h.version, vectors[i].h.version);
    assert_int_equal(h.type, vectors[i].h.type);
    assert_int_equal(h.flags, vectors[i].h.flags);
    assert_int_equal(h.stream_id, vectors[i].h.stream_id);
    assert_int_equal(h.length, vectors[i].h.length);
  }
}

static void test_decode_every_truncation(void **state)
{
  struct tn_frame_header h;
  uint8_t copy[TN_FRAME_HEADER_LEN];
  size_t i, cut;
  int r;

  for (i = 0; i < NVECTORS; i++) {
    for (cut = 0; cut < TN_FRAME_HEADER_LEN; cut++) {
      memcpy(copy, vectors[i].wire, cut);
      r = tn_frame_decode(&h, copy, cut);
      if (r != TN_ERR_NEED_MORE)
        fail_msg("%s: prefix of %zu bytes returned %d", vectors[i].name, cut, r);
    }
  }
}

static void test_decode_rejects(void **state)
{
  static const struct {
    const char *name;
    uint8_t wire[TN_FRAME_HEADER_LEN];
    size_t len;
  } cases[] = {
    { "version 1", { 0x01, 0x00 }, TN_FRAME_HEADER_LEN },
    { "version 255", { 0xff }, TN_FRAME_HEADER_LEN },
    { "type 4", { 0x00, 0x04 }, TN_FRAME_HEADER_LEN },
    { "type 255", { 0x00, 0xff }, TN_FRAME_HEADER_LEN },
    /* Judged on arrival of the offending byte, not after all twelve. */
    { "version 1, one byte", { 0x01 }, 1 },
    { "type 9, two bytes", { 0x00, 0x09 }, 2 },
  };
  struct tn_frame_header h;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (tn_frame_decode(&h, cases[i].wire, cases[i].len) != TN_ERR_INVALID)
      fail_msg("%s: not rejected", cases[i].name);
  }
}

static void test_encode_short_buffer(void **state)
{
  uint8_t out[TN_FRAME_HEADER_LEN];
  size_t len;

  memset(out, 0xAA, sizeof(out));
  for (len = 0; len < TN_FRAME_HEADER_LEN; len++)
    assert_int_equal(tn_frame_encode(&vectors[0].h, out, len), 0);
  /* Nothing was written by the refused calls. */
  for (len = 0; len < TN_FRAME_HEADER_LEN; len++)
    assert_int_equal(out[len], 0xAA);
  assert_int_equal(tn_frame_encode(&vectors[0].h, out, TN_FRAME_HEADER_LEN), TN_FRAME_HEADER_LEN);
}

static void test_type_names(void **state)
{
  assert_string_equal(tn_frame_type_name(TN_FRAME_DATA), "Data");
  assert_string_equal(tn_frame_type_name(TN_FRAME_WINDOW_UPDATE), "WindowUpdate");
  assert_string_equal(tn_frame_type_name(TN_FRAME_PING), "Ping");
  assert_string_equal(tn_frame_type_name(TN_FRAME_GO_AWAY), "GoAway");
  assert_string_equal(tn_frame_type_name(4), "Unknown");
  assert_string_equal(tn_frame_type_name(255), "Unknown");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode_vectors),
    cmocka_unit_test(test_decode_round_trip),
    cmocka_unit_test(test_decode_every_truncation),
    cmocka_unit_test(test_decode_rejects),
    cmocka_unit_test(test_encode_short_buffer),
    cmocka_unit_test(test_type_names),
  };

  return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
