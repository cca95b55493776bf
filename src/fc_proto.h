/*
 * fc wire protocol v1 (DESIGN §3): the one codec both the nginx module and
 * the runner link.  C11, no allocation of its own except msgpack-c's zone
 * while decoding (freed before returning, or the caller's zone, cleared).
 *
 * Frame = 8-byte header + payload:
 *   byte 0     version (FC_PROTO_VERSION)
 *   byte 1     type (fc_frame_type_e)
 *   byte 2..3  flags, big-endian (FC_FLAG_END_STREAM)
 *   byte 4..7  payload length, big-endian u32
 *
 * REQUEST, RESPONSE and ERROR payloads are msgpack maps; DATA payloads are
 * raw body bytes and are never touched by this codec.
 */
#ifndef FC_PROTO_H
#define FC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "fc_limits.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FC_PROTO_VERSION    1

typedef enum {
    FC_FRAME_REQUEST  = 0x01,   /* module -> runner, msgpack map */
    FC_FRAME_RESPONSE = 0x02,   /* runner -> module, msgpack map */
    FC_FRAME_DATA     = 0x03,   /* both ways, raw bytes */
    FC_FRAME_ERROR    = 0x04    /* runner -> module, msgpack map */
} fc_frame_type_e;

#define FC_FLAG_END_STREAM  0x0001

/* Result codes.  0 is success; every failure is negative. */
typedef enum {
    FC_OK             =  0,
    FC_EVERSION       = -1,     /* unknown protocol version */
    FC_ETYPE          = -2,     /* unknown frame type */
    FC_ETOOBIG        = -3,     /* payload length over the limit */
    FC_EMSGPACK       = -4,     /* payload is not one whole msgpack object */
    FC_ESCHEMA        = -5,     /* msgpack is fine, but a field is missing or
                                   has the wrong type */
    FC_ENOSPACE       = -6,     /* output buffer too small (encoders) */
    FC_ENOMEM         = -7,     /* allocator returned NULL */
    FC_ETOOMANY       = -8      /* more than FC_MAX_HEADERS headers */
} fc_status_e;

/* A human-readable name for a status, for log lines. */
const char *fc_strerror(int status);

/* ---- frame header ---------------------------------------------------- */

typedef struct {
    uint8_t   version;
    uint8_t   type;
    uint16_t  flags;
    uint32_t  length;
} fc_frame_header_t;

/* Writes FC_FRAME_HEADER_SIZE bytes. */
void fc_frame_header_encode(uint8_t *out, uint8_t type, uint16_t flags,
    uint32_t length);

/* Reads FC_FRAME_HEADER_SIZE bytes and validates version, type and length
 * (the length limit is FC_MAX_FRAME_PAYLOAD for DATA frames and
 * FC_MAX_META_PAYLOAD for the msgpack frames). */
int fc_frame_header_decode(const uint8_t *in, fc_frame_header_t *hdr);

/* ---- incremental frame parser (the runner's reader) ------------------ */

/*
 * Fed arbitrary slices of a byte stream (down to one byte at a time), it
 * reports each frame header, the payload in as many slices as it arrived in
 * (pointers into the caller's buffer: no copy), and each frame's end.
 * A callback returning non-zero stops the parser; fc_parser_execute() then
 * returns the number of bytes consumed so far and p->paused is set, so the
 * caller can resume later with the rest of the buffer (backpressure).
 */
typedef struct fc_parser_s fc_parser_t;

typedef struct {
    int (*on_header)(fc_parser_t *p, const fc_frame_header_t *hdr);
    int (*on_payload)(fc_parser_t *p, const uint8_t *data, size_t len);
    int (*on_frame_end)(fc_parser_t *p);
} fc_parser_callbacks_t;

struct fc_parser_s {
    /* private */
    uint8_t            header_buf[FC_FRAME_HEADER_SIZE];
    size_t             header_have;
    uint32_t           payload_left;
    int                in_payload;
    fc_frame_header_t  hdr;
    /* public */
    int                error;       /* an fc_status_e once the stream is bad */
    int                paused;      /* a callback asked to stop */
    void              *data;        /* owner's pointer */
};

void fc_parser_init(fc_parser_t *p, void *data);

/* Returns bytes consumed.  On a bad stream p->error is set (< 0) and the
 * connection must be closed. */
size_t fc_parser_execute(fc_parser_t *p, const fc_parser_callbacks_t *cb,
    const uint8_t *data, size_t len);

/* ---- messages --------------------------------------------------------- */

/* Strings are (pointer, length), never NUL-terminated; decoded strings point
 * into the payload buffer given to the decoder. */
typedef struct {
    const char  *data;
    size_t       len;
} fc_str_t;

typedef struct {
    fc_str_t  name;
    fc_str_t  value;
} fc_header_t;

typedef struct {
    fc_str_t      function;
    fc_str_t      method;
    fc_str_t      uri;          /* raw, with query */
    fc_str_t      version;      /* "HTTP/1.1", "HTTP/2.0", ... */
    fc_header_t  *headers;      /* order and duplicates kept */
    size_t        nheaders;
    fc_str_t      remote_addr;
    uint32_t      remote_port;
    fc_str_t      scheme;
    fc_str_t      host;
    fc_str_t      request_id;
    int64_t       content_length;   /* -1: unknown (chunked) */
    uint64_t      deadline_ms;      /* 0: none */
} fc_request_t;

typedef struct {
    uint32_t      status;
    fc_header_t  *headers;
    size_t        nheaders;
    int           cold_start;   /* bool */
    fc_str_t      instance;
} fc_response_t;

typedef struct {
    uint32_t  status;
    fc_str_t  code;
    fc_str_t  message;
} fc_error_t;

/* Upper bounds of the encoded payload sizes, so a caller can allocate once. */
size_t fc_request_size_bound(const fc_request_t *req);
size_t fc_response_size_bound(const fc_response_t *resp);
size_t fc_error_size_bound(const fc_error_t *err);

/* Encode the msgpack payload (no frame header) into buf[0..cap).
 * On success *written is the payload length.  FC_ENOSPACE if cap is short. */
int fc_request_encode(const fc_request_t *req, uint8_t *buf, size_t cap,
    size_t *written);
int fc_response_encode(const fc_response_t *resp, uint8_t *buf, size_t cap,
    size_t *written);
int fc_error_encode(const fc_error_t *err, uint8_t *buf, size_t cap,
    size_t *written);

/*
 * The RESPONSE payload in parts, for a caller whose headers are not an
 * fc_header_t array (the runner's): the exact size of each part, summed by
 * the caller, which makes room once and then writes head, nheaders header
 * pairs and tail in this order; each returns where the next part goes.
 * The same bytes as fc_response_encode().  The caller keeps the sum within
 * FC_MAX_META_PAYLOAD and nheaders within FC_MAX_HEADERS.
 */
size_t fc_response_head_size(uint32_t status, size_t nheaders);
size_t fc_response_header_size(size_t name_len, size_t value_len);
size_t fc_response_tail_size(size_t instance_len);
uint8_t *fc_response_put_head(uint8_t *out, uint32_t status, size_t nheaders);
uint8_t *fc_response_put_header(uint8_t *out, const char *name,
    size_t name_len, const char *value, size_t value_len);
uint8_t *fc_response_put_tail(uint8_t *out, int cold_start,
    const char *instance, size_t instance_len);

/* Allocator for decoded header arrays: nginx passes its pool, the runner
 * malloc or an arena.  Returns NULL on failure. */
typedef void *(*fc_alloc_pt)(void *ctx, size_t size);

/* Decode a payload.  Unknown map keys are ignored (forward compatible);
 * missing required keys or wrong types give FC_ESCHEMA.  Required:
 * REQUEST: function, method, uri; RESPONSE: status; ERROR: status, code.
 * Absent optional strings decode as {NULL, 0}, content_length as -1.
 * Malformed msgpack anywhere in a payload is FC_EMSGPACK, before any
 * schema error.  The REQUEST decoder reads the bytes in one pass and needs
 * no msgpack-c zone. */
int fc_request_decode(const uint8_t *payload, size_t len, fc_request_t *req,
    fc_alloc_pt alloc, void *alloc_ctx);
int fc_response_decode(const uint8_t *payload, size_t len,
    fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx);
int fc_error_decode(const uint8_t *payload, size_t len, fc_error_t *err);

/* ---- the nginx module's entry points (issue 11) ---------------------- */


/*
 * An upper bound of a REQUEST payload from what the caller sums while it
 * fills fc_request_t: the lengths of all its strings (header names and
 * values included) and the number of headers.  SIZE_MAX when over limits.
 */
size_t fc_request_size_bound_sum(size_t strings_len, size_t nheaders);

/* The REQUEST's 12 keys as msgpack-c packs them: a fixstr byte each. */
#define FC_REQUEST_NKEYS  12
#define FC_REQUEST_KEYS_SIZE                                                  \
    (sizeof("function") + sizeof("method") + sizeof("uri")                    \
     + sizeof("version") + sizeof("headers") + sizeof("remote_addr")          \
     + sizeof("remote_port") + sizeof("scheme") + sizeof("host")              \
     + sizeof("request_id") + sizeof("content_length")                        \
     + sizeof("deadline_ms"))

typedef struct {
    uint8_t   bytes[FC_REQUEST_KEYS_SIZE];
    uint16_t  end[FC_REQUEST_NKEYS];     /* where each key's bytes end */
} fc_request_keys_t;

/* Packs the keys once, with msgpack-c, for fc_request_encode_span(). */
void fc_request_keys_init(fc_request_keys_t *keys);

/*
 * The same bytes as fc_request_encode(), written by a packer that only
 * copies, the keys copied from `keys`.  FC_ENOSPACE when the payload does
 * not fit in min(cap, FC_MAX_META_PAYLOAD) bytes.
 */
int fc_request_encode_span(const fc_request_t *req,
    const fc_request_keys_t *keys, uint8_t *buf, size_t cap,
    size_t *written);
/*
 * The same decoders with msgpack-c's zone kept by the caller: one zone
 * (msgpack_zone_init(zone, FC_ZONE_CHUNK_SIZE), msgpack_zone_destroy at the
 * end) serves message after message and is cleared before each returns, so
 * a message that fits in its first chunk costs no malloc/free.  Decoded
 * strings point into the payload, never into the zone.
 */
#define FC_ZONE_CHUNK_SIZE  2048

struct msgpack_zone;

/* A zone for the *_in_zone decoders (msgpack_zone_new with
 * FC_ZONE_CHUNK_SIZE), for callers that do not include msgpack.h; NULL when
 * out of memory. */
struct msgpack_zone *fc_zone_create(void);
void fc_zone_destroy(struct msgpack_zone *zone);

int fc_response_decode_in_zone(struct msgpack_zone *zone,
    const uint8_t *payload, size_t len, fc_response_t *resp,
    fc_alloc_pt alloc, void *alloc_ctx);
int fc_error_decode_in_zone(struct msgpack_zone *zone,
    const uint8_t *payload, size_t len, fc_error_t *err);

#ifdef __cplusplus
}
#endif

#endif /* FC_PROTO_H */
