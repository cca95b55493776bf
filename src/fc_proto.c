/*
 * fc wire protocol v1 codec (DESIGN §3).  See fc_proto.h for the contract.
 *
 * Compiled both by CMake (C11) and inside nginx (gcc default std, nginx's
 * warning flags), so: nginx-like style, no C++ keywords as identifiers, no
 * global mutable state, no allocation of its own.  msgpack-c allocates only
 * in its zone while decoding: a zone made and freed per message, or the
 * caller's, kept across messages and cleared after each (_in_zone).
 */

#include <limits.h>
#include <string.h>

#include <msgpack.h>

#include "fc_proto.h"


/* ---- status names ----------------------------------------------------- */

const char *
fc_strerror(int status)
{
    switch (status) {
    case FC_OK:
        return "ok";
    case FC_EVERSION:
        return "unknown protocol version";
    case FC_ETYPE:
        return "unknown frame type";
    case FC_ETOOBIG:
        return "payload length over the limit";
    case FC_EMSGPACK:
        return "payload is not one whole msgpack object";
    case FC_ESCHEMA:
        return "msgpack field missing or of the wrong type";
    case FC_ENOSPACE:
        return "output buffer too small";
    case FC_ENOMEM:
        return "out of memory";
    case FC_ETOOMANY:
        return "too many headers";
    default:
        return "unknown error";
    }
}


/* ---- frame header ----------------------------------------------------- */

void
fc_frame_header_encode(uint8_t *out, uint8_t type, uint16_t flags,
    uint32_t length)
{
    out[0] = FC_PROTO_VERSION;
    out[1] = type;
    out[2] = (uint8_t) (flags >> 8);
    out[3] = (uint8_t) flags;
    out[4] = (uint8_t) (length >> 24);
    out[5] = (uint8_t) (length >> 16);
    out[6] = (uint8_t) (length >> 8);
    out[7] = (uint8_t) length;
}


int
fc_frame_header_decode(const uint8_t *in, fc_frame_header_t *hdr)
{
    uint32_t  limit;

    /* filled in even when invalid, so the caller can log what it got */
    hdr->version = in[0];
    hdr->type = in[1];
    hdr->flags = (uint16_t) (((uint16_t) in[2] << 8) | in[3]);
    hdr->length = ((uint32_t) in[4] << 24) | ((uint32_t) in[5] << 16)
                  | ((uint32_t) in[6] << 8) | (uint32_t) in[7];

    if (hdr->version != FC_PROTO_VERSION) {
        return FC_EVERSION;
    }

    switch (hdr->type) {
    case FC_FRAME_DATA:
        limit = FC_MAX_FRAME_PAYLOAD;
        break;
    case FC_FRAME_REQUEST:
    case FC_FRAME_RESPONSE:
    case FC_FRAME_ERROR:
        limit = FC_MAX_META_PAYLOAD;
        break;
    default:
        return FC_ETYPE;
    }

    if (hdr->length > limit) {
        return FC_ETOOBIG;
    }

    return FC_OK;
}


/* ---- incremental frame parser ----------------------------------------- */

void
fc_parser_init(fc_parser_t *p, void *data)
{
    memset(p, 0, sizeof(fc_parser_t));
    p->data = data;
}


size_t
fc_parser_execute(fc_parser_t *p, const fc_parser_callbacks_t *cb,
    const uint8_t *data, size_t len)
{
    int     rc;
    size_t  pos, n;

    if (p->error) {
        return 0;
    }

    /* calling again is how a paused parser resumes */
    p->paused = 0;
    pos = 0;

    for ( ;; ) {

        if (p->in_payload) {

            if (p->payload_left == 0) {
                /*
                 * Reached also with no input left: a zero-length frame, or a
                 * pause in the last on_payload, still owes its frame end.
                 */
                p->in_payload = 0;
                p->header_have = 0;

                if (cb->on_frame_end && cb->on_frame_end(p) != 0) {
                    p->paused = 1;
                    return pos;
                }

                continue;
            }

            if (pos == len) {
                return pos;
            }

            n = len - pos;
            if (n > p->payload_left) {
                n = p->payload_left;
            }

            p->payload_left -= (uint32_t) n;
            pos += n;

            if (cb->on_payload && cb->on_payload(p, data + pos - n, n) != 0) {
                p->paused = 1;
                return pos;
            }

            continue;
        }

        if (pos == len) {
            return pos;
        }

        n = FC_FRAME_HEADER_SIZE - p->header_have;
        if (n > len - pos) {
            n = len - pos;
        }

        memcpy(p->header_buf + p->header_have, data + pos, n);
        p->header_have += n;
        pos += n;

        if (p->header_have < FC_FRAME_HEADER_SIZE) {
            return pos;
        }

        rc = fc_frame_header_decode(p->header_buf, &p->hdr);
        if (rc != FC_OK) {
            p->error = rc;
            return pos;
        }

        p->in_payload = 1;
        p->payload_left = p->hdr.length;

        if (cb->on_header && cb->on_header(p, &p->hdr) != 0) {
            p->paused = 1;
            return pos;
        }
    }
}


/* ---- encoding ---------------------------------------------------------- */

/*
 * msgpack_packer writes through this.  It never fails mid-way: it keeps
 * counting what would have been written, so the end result can tell "buffer
 * too small" (FC_ENOSPACE) from "over the protocol limit" (FC_ETOOBIG).
 */
typedef struct {
    uint8_t  *buf;
    size_t    cap;
    size_t    used;
    int       oversize;
} fc_writer_t;


static int
fc_writer_write(void *data, const char *buf, size_t len)
{
    fc_writer_t  *w = data;

    if (len == 0) {
        /* an empty string's body: buf may be NULL (an absent field) */
        return 0;
    }

    if (w->used <= w->cap && len <= w->cap - w->used) {
        /* fits (the caller sized buf by the bound): msgpack-c writes most
         * tokens a byte at a time */
        if (len == 1) {
            w->buf[w->used] = (uint8_t) buf[0];

        } else {
            memcpy(w->buf + w->used, buf, len);
        }

        w->used += len;

        return 0;
    }

    if (len > FC_MAX_META_PAYLOAD || w->used > FC_MAX_META_PAYLOAD) {
        w->oversize = 1;
        return 0;
    }

    if (w->used <= w->cap && len <= w->cap - w->used) {
        memcpy(w->buf + w->used, buf, len);
    }

    w->used += len;

    return 0;
}


static void
fc_writer_init(fc_writer_t *w, msgpack_packer *pk, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->used = 0;
    w->oversize = 0;
    msgpack_packer_init(pk, w, fc_writer_write);
}


/* A key of a literal: its length known at compile time. */
#define fc_pack_key(pk, key)                                                 \
    fc_pack_key_len(pk, key, sizeof(key) - 1)

static void
fc_pack_key_len(msgpack_packer *pk, const char *key, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, key, len);
}


static void
fc_pack_str(msgpack_packer *pk, fc_writer_t *w, const fc_str_t *s)
{
    if (s->len > FC_MAX_META_PAYLOAD) {
        /* also keeps msgpack's u32 length field from truncating */
        w->oversize = 1;
        return;
    }

    msgpack_pack_str(pk, s->len);
    msgpack_pack_str_body(pk, s->data, s->len);
}


static void
fc_pack_headers(msgpack_packer *pk, fc_writer_t *w,
    const fc_header_t *headers, size_t nheaders)
{
    size_t  i;

    msgpack_pack_array(pk, nheaders);

    for (i = 0; i < nheaders; i++) {
        msgpack_pack_array(pk, 2);
        fc_pack_str(pk, w, &headers[i].name);
        fc_pack_str(pk, w, &headers[i].value);
    }
}


static int
fc_writer_finish(const fc_writer_t *w, size_t *written)
{
    if (w->oversize || w->used > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    if (w->used > w->cap) {
        return FC_ENOSPACE;
    }

    *written = w->used;

    return FC_OK;
}


int
fc_request_encode(const fc_request_t *req, uint8_t *buf, size_t cap,
    size_t *written)
{
    fc_writer_t     w;
    msgpack_packer  pk;

    if (req->nheaders > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    fc_writer_init(&w, &pk, buf, cap);

    msgpack_pack_map(&pk, 12);

    fc_pack_key(&pk, "function");
    fc_pack_str(&pk, &w, &req->function);
    fc_pack_key(&pk, "method");
    fc_pack_str(&pk, &w, &req->method);
    fc_pack_key(&pk, "uri");
    fc_pack_str(&pk, &w, &req->uri);
    fc_pack_key(&pk, "version");
    fc_pack_str(&pk, &w, &req->version);
    fc_pack_key(&pk, "headers");
    fc_pack_headers(&pk, &w, req->headers, req->nheaders);
    fc_pack_key(&pk, "remote_addr");
    fc_pack_str(&pk, &w, &req->remote_addr);
    fc_pack_key(&pk, "remote_port");
    msgpack_pack_uint32(&pk, req->remote_port);
    fc_pack_key(&pk, "scheme");
    fc_pack_str(&pk, &w, &req->scheme);
    fc_pack_key(&pk, "host");
    fc_pack_str(&pk, &w, &req->host);
    fc_pack_key(&pk, "request_id");
    fc_pack_str(&pk, &w, &req->request_id);
    fc_pack_key(&pk, "content_length");
    msgpack_pack_int64(&pk, req->content_length);
    fc_pack_key(&pk, "deadline_ms");
    msgpack_pack_uint64(&pk, req->deadline_ms);

    return fc_writer_finish(&w, written);
}


/*
 * The RESPONSE, written byte by byte in msgpack-c's forms (the smallest
 * that holds each value) without its packer: the runner writes one per
 * request, and the packer's write callback per token cost more than the
 * bytes.  The caller sums the parts' exact sizes, makes room once and
 * writes the parts in order (fc_proto.h); fc_response_encode() does the
 * same for an fc_response_t.
 */

#define FC_KEY_STATUS      "\xa6" "status"
#define FC_KEY_HEADERS     "\xa7" "headers"
#define FC_KEY_COLD_START  "\xaa" "cold_start"
#define FC_KEY_INSTANCE    "\xa8" "instance"

#define fc_put_key(p, key)                                                    \
    (memcpy(p, key, sizeof(key) - 1), (p) + sizeof(key) - 1)


static size_t
fc_mp_str_size(size_t len)
{
    return (len < 32 ? 1 : len < 256 ? 2 : len < 65536 ? 3 : 5) + len;
}


static size_t
fc_mp_uint_size(uint64_t v)
{
    return v < 128 ? 1 : v < 256 ? 2 : v < 65536 ? 3 : v <= UINT32_MAX ? 5 : 9;
}


static size_t
fc_mp_array_size(size_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}


static uint8_t *
fc_mp_put_be(uint8_t *p, uint64_t v, size_t n)
{
    size_t  i;

    for (i = n; i > 0; i--) {
        p[i - 1] = (uint8_t) v;
        v >>= 8;
    }

    return p + n;
}


static uint8_t *
fc_mp_put_str(uint8_t *p, const char *s, size_t len)
{
    if (len < 32) {
        *p++ = (uint8_t) (0xa0 | len);

    } else if (len < 256) {
        *p++ = 0xd9;
        *p++ = (uint8_t) len;

    } else if (len < 65536) {
        *p++ = 0xda;
        p = fc_mp_put_be(p, len, 2);

    } else {
        *p++ = 0xdb;
        p = fc_mp_put_be(p, len, 4);
    }

    if (len) {
        memcpy(p, s, len);
    }

    return p + len;
}


static uint8_t *
fc_mp_put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t) v;
        return p;
    }

    if (v < 256) {
        *p++ = 0xcc;
        *p++ = (uint8_t) v;
        return p;
    }

    if (v < 65536) {
        *p++ = 0xcd;
        return fc_mp_put_be(p, v, 2);
    }

    if (v <= UINT32_MAX) {
        *p++ = 0xce;
        return fc_mp_put_be(p, v, 4);
    }

    *p++ = 0xcf;
    return fc_mp_put_be(p, v, 8);
}


static uint8_t *
fc_mp_put_array(uint8_t *p, size_t n)
{
    if (n < 16) {
        *p++ = (uint8_t) (0x90 | n);
        return p;
    }

    if (n < 65536) {
        *p++ = 0xdc;
        return fc_mp_put_be(p, n, 2);
    }

    *p++ = 0xdd;
    return fc_mp_put_be(p, n, 4);
}


size_t
fc_response_head_size(uint32_t status, size_t nheaders)
{
    return 1 + sizeof(FC_KEY_STATUS) - 1 + fc_mp_uint_size(status)
           + sizeof(FC_KEY_HEADERS) - 1 + fc_mp_array_size(nheaders);
}


size_t
fc_response_header_size(size_t name_len, size_t value_len)
{
    return 1 + fc_mp_str_size(name_len) + fc_mp_str_size(value_len);
}


size_t
fc_response_tail_size(size_t instance_len)
{
    return sizeof(FC_KEY_COLD_START) - 1 + 1 + sizeof(FC_KEY_INSTANCE) - 1
           + fc_mp_str_size(instance_len);
}


uint8_t *
fc_response_put_head(uint8_t *out, uint32_t status, size_t nheaders)
{
    *out++ = 0x84;                      /* a map of 4 */
    out = fc_put_key(out, FC_KEY_STATUS);
    out = fc_mp_put_uint(out, status);
    out = fc_put_key(out, FC_KEY_HEADERS);

    return fc_mp_put_array(out, nheaders);
}


uint8_t *
fc_response_put_header(uint8_t *out, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
    *out++ = 0x92;                      /* an array of 2 */
    out = fc_mp_put_str(out, name, name_len);

    return fc_mp_put_str(out, value, value_len);
}


uint8_t *
fc_response_put_tail(uint8_t *out, int cold_start, const char *instance,
    size_t instance_len)
{
    out = fc_put_key(out, FC_KEY_COLD_START);
    *out++ = cold_start ? 0xc3 : 0xc2;
    out = fc_put_key(out, FC_KEY_INSTANCE);

    return fc_mp_put_str(out, instance, instance_len);
}


int
fc_response_encode(const fc_response_t *resp, uint8_t *buf, size_t cap,
    size_t *written)
{
    size_t              i, size;
    uint8_t            *p;
    const fc_header_t  *h;

    if (resp->nheaders > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    /* summed with every length bounded first, so no sum can wrap */

    if (resp->instance.len > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    size = fc_response_head_size(resp->status, resp->nheaders)
           + fc_response_tail_size(resp->instance.len);

    for (i = 0; i < resp->nheaders; i++) {
        h = &resp->headers[i];

        if (h->name.len > FC_MAX_META_PAYLOAD
            || h->value.len > FC_MAX_META_PAYLOAD)
        {
            return FC_ETOOBIG;
        }

        size += fc_response_header_size(h->name.len, h->value.len);
    }

    if (size > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    if (size > cap) {
        return FC_ENOSPACE;
    }

    p = fc_response_put_head(buf, resp->status, resp->nheaders);

    for (i = 0; i < resp->nheaders; i++) {
        h = &resp->headers[i];
        p = fc_response_put_header(p, h->name.data, h->name.len,
                                   h->value.data, h->value.len);
    }

    p = fc_response_put_tail(p, resp->cold_start, resp->instance.data,
                             resp->instance.len);

    *written = (size_t) (p - buf);

    return FC_OK;
}


int
fc_error_encode(const fc_error_t *err, uint8_t *buf, size_t cap,
    size_t *written)
{
    fc_writer_t     w;
    msgpack_packer  pk;

    fc_writer_init(&w, &pk, buf, cap);

    msgpack_pack_map(&pk, 3);

    fc_pack_key(&pk, "status");
    msgpack_pack_uint32(&pk, err->status);
    fc_pack_key(&pk, "code");
    fc_pack_str(&pk, &w, &err->code);
    fc_pack_key(&pk, "message");
    fc_pack_str(&pk, &w, &err->message);

    return fc_writer_finish(&w, written);
}


/* ---- size bounds ------------------------------------------------------- */

/* msgpack overhead: str header <= 5 bytes, array/map header <= 5, integer
 * <= 9, bool 1.  Keys are short fixstr: 1 byte of header. */
#define FC_MP_STR_HDR   5
#define FC_MP_CONT_HDR  5
#define FC_MP_INT       9


static size_t
fc_bound_add(size_t a, size_t b)
{
    return (a > SIZE_MAX - b) ? SIZE_MAX : a + b;
}


static size_t
fc_bound_key(const char *key)
{
    return 1 + strlen(key);
}


static size_t
fc_bound_str(size_t acc, const char *key, const fc_str_t *s)
{
    acc = fc_bound_add(acc, fc_bound_key(key) + FC_MP_STR_HDR);
    return fc_bound_add(acc, s->len);
}


static size_t
fc_bound_headers(size_t acc, const fc_header_t *headers, size_t nheaders)
{
    size_t  i;

    acc = fc_bound_add(acc, fc_bound_key("headers") + FC_MP_CONT_HDR);

    for (i = 0; i < nheaders; i++) {
        acc = fc_bound_add(acc, 1 + 2 * FC_MP_STR_HDR);
        acc = fc_bound_add(acc, headers[i].name.len);
        acc = fc_bound_add(acc, headers[i].value.len);
    }

    return acc;
}


size_t
fc_request_size_bound(const fc_request_t *req)
{
    size_t  n = FC_MP_CONT_HDR;

    n = fc_bound_str(n, "function", &req->function);
    n = fc_bound_str(n, "method", &req->method);
    n = fc_bound_str(n, "uri", &req->uri);
    n = fc_bound_str(n, "version", &req->version);
    n = fc_bound_headers(n, req->headers, req->nheaders);
    n = fc_bound_str(n, "remote_addr", &req->remote_addr);
    n = fc_bound_add(n, fc_bound_key("remote_port") + FC_MP_INT);
    n = fc_bound_str(n, "scheme", &req->scheme);
    n = fc_bound_str(n, "host", &req->host);
    n = fc_bound_str(n, "request_id", &req->request_id);
    n = fc_bound_add(n, fc_bound_key("content_length") + FC_MP_INT);
    n = fc_bound_add(n, fc_bound_key("deadline_ms") + FC_MP_INT);

    return n;
}


size_t
fc_response_size_bound(const fc_response_t *resp)
{
    size_t  n = FC_MP_CONT_HDR;

    n = fc_bound_add(n, fc_bound_key("status") + FC_MP_INT);
    n = fc_bound_headers(n, resp->headers, resp->nheaders);
    n = fc_bound_add(n, fc_bound_key("cold_start") + 1);
    n = fc_bound_str(n, "instance", &resp->instance);

    return n;
}


size_t
fc_error_size_bound(const fc_error_t *err)
{
    size_t  n = FC_MP_CONT_HDR;

    n = fc_bound_add(n, fc_bound_key("status") + FC_MP_INT);
    n = fc_bound_str(n, "code", &err->code);
    n = fc_bound_str(n, "message", &err->message);

    return n;
}


/* ---- decoding ---------------------------------------------------------- */

/*
 * Checks that buf[0..len) is exactly one well-formed msgpack object before
 * msgpack-c sees it.  msgpack-c allocates a container's elements as soon as
 * it reads the count, so "array32 of 4G elements" in 5 bytes would ask its
 * zone for ~100 GiB; here every element still owed must fit in the bytes
 * left (each takes at least one), which bounds msgpack-c's zone by the
 * payload size.  Nesting is capped below msgpack-c's own cap (32,
 * MSGPACK_EMBED_STACK_SIZE), so that a failure of msgpack_unpack() afterwards
 * really means memory; our maps need 3 levels.  No recursion.
 */
#define FC_MSGPACK_MAX_DEPTH  16

/*
 * Skips the one object at buf[*pos], nested at most max_depth containers
 * deep (<= FC_MSGPACK_MAX_DEPTH), with the same checks: the check of a
 * whole payload, and the REQUEST decoder's skip of an unknown value.
 */
static int
fc_msgpack_skip(const uint8_t *buf, size_t len, size_t *at, size_t max_depth)
{
    int       container;
    uint8_t   b;
    size_t    pos, lenlen, skip, extra, i, depth;
    uint64_t  owed, count, v;
    uint64_t  left[FC_MSGPACK_MAX_DEPTH];  /* elements left per open level */

    pos = *at;
    depth = 0;
    owed = 1;           /* objects not yet started: the root */

    for ( ;; ) {

        if (pos >= len) {
            return FC_EMSGPACK;         /* truncated */
        }

        b = buf[pos++];
        owed--;

        if (b >= 0xa0 && b <= 0xbf) {
            /* fixstr, most of a message (keys, names, values): its body
             * skipped here, without the general path's bookkeeping */
            skip = b & 0x1f;
            if (skip > len - pos) {
                return FC_EMSGPACK;
            }
            pos += skip;
            goto complete;
        }

        container = 0;
        count = 0;      /* container elements */
        lenlen = 0;     /* size of a big-endian length field */
        extra = 0;      /* bytes after the length field besides the body */
        skip = 0;       /* fixed-size body */

        if (b <= 0x7f || b >= 0xe0) {
            /* fixint */

        } else if (b <= 0x8f) {
            container = 1;
            count = 2 * (uint64_t) (b & 0x0f);

        } else if (b <= 0x9f) {
            container = 1;
            count = b & 0x0f;

        } else if (b <= 0xbf) {
            skip = b & 0x1f;

        } else {
            switch (b) {
            case 0xc0: case 0xc2: case 0xc3:
                break;
            case 0xc4: case 0xd9: lenlen = 1; break;        /* bin8, str8 */
            case 0xc5: case 0xda: lenlen = 2; break;        /* ... 16 */
            case 0xc6: case 0xdb: lenlen = 4; break;        /* ... 32 */
            case 0xc7: lenlen = 1; extra = 1; break;        /* ext8 */
            case 0xc8: lenlen = 2; extra = 1; break;        /* ext16 */
            case 0xc9: lenlen = 4; extra = 1; break;        /* ext32 */
            case 0xca: skip = 4; break;                     /* float32 */
            case 0xcb: skip = 8; break;                     /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                     /* fixext1 */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;                    /* fixext16 */
            case 0xdc: case 0xde: lenlen = 2; container = 1; break;
            case 0xdd: case 0xdf: lenlen = 4; container = 1; break;
            default:
                return FC_EMSGPACK;     /* 0xc1: never used */
            }
        }

        if (lenlen > 0) {
            if (lenlen > len - pos) {
                return FC_EMSGPACK;
            }

            v = 0;
            for (i = 0; i < lenlen; i++) {
                v = (v << 8) | buf[pos++];
            }

            if (b == 0xde || b == 0xdf) {
                count = 2 * v;

            } else if (container) {
                count = v;

            } else {
                if (v > len - pos) {
                    return FC_EMSGPACK;
                }
                skip = (size_t) v + extra;
            }
        }

        if (skip > len - pos) {
            return FC_EMSGPACK;
        }
        pos += skip;

        if (container) {
            if (depth == max_depth) {
                return FC_EMSGPACK;     /* msgpack-c would refuse it too */
            }

            if (count > 0) {
                owed += count;
                if (owed > len - pos) {
                    return FC_EMSGPACK;
                }

                left[depth++] = count;
                continue;
            }
        }

    complete:

        /* one object complete: close every container it completes */

        while (depth > 0) {
            if (--left[depth - 1] > 0) {
                break;
            }
            depth--;
        }

        if (depth == 0) {
            break;
        }
    }

    *at = pos;

    return FC_OK;
}


static int
fc_msgpack_check(const uint8_t *buf, size_t len)
{
    int     rc;
    size_t  pos;

    pos = 0;

    rc = fc_msgpack_skip(buf, len, &pos, FC_MSGPACK_MAX_DEPTH);
    if (rc != FC_OK) {
        return rc;
    }

    if (pos != len) {
        return FC_EMSGPACK;             /* trailing bytes */
    }

    return FC_OK;
}


/*
 * Unpacks the one map in payload into `zone`, which the caller owns: made
 * for this message (fc_*_decode) or kept across messages and cleared after
 * each (fc_*_decode_in_zone).  Decoded strings point into the payload,
 * never into the zone (fc_get_str), so nothing decoded outlives a clear.
 */
static int
fc_unpack_map(const uint8_t *payload, size_t len, msgpack_zone *zone,
    msgpack_object *obj)
{
    int                    rc;
    size_t                 off;
    msgpack_unpack_return  ret;

    if (len > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    rc = fc_msgpack_check(payload, len);
    if (rc != FC_OK) {
        return rc;
    }

    off = 0;
    ret = msgpack_unpack((const char *) payload, len, &off, zone, obj);

    if (ret != MSGPACK_UNPACK_SUCCESS) {
        return (ret == MSGPACK_UNPACK_NOMEM_ERROR) ? FC_ENOMEM : FC_EMSGPACK;
    }

    if (obj->type != MSGPACK_OBJECT_MAP) {
        return FC_ESCHEMA;
    }

    return FC_OK;
}


/* A message's known key, with its length (no strlen per lookup). */
typedef struct {
    const char  *name;
    size_t       len;
} fc_key_t;

#define fc_key(name)  { name, sizeof(name) - 1 }


static int
fc_key_is(const fc_key_t *k, const char *s, size_t len)
{
    return k->len == len && memcmp(k->name, s, len) == 0;
}


/*
 * Returns the index of a string key in keys[], or -1 (unknown: ignored).
 * keys[hint] is tried first: encoders write the keys in table order, so a
 * lookup is one comparison.
 */
static int
fc_key_index(const msgpack_object *key, const fc_key_t *keys, int n, int hint)
{
    int          i;
    size_t       len;
    const char  *s;

    if (key->type == MSGPACK_OBJECT_STR) {
        s = key->via.str.ptr;
        len = key->via.str.size;

    } else if (key->type == MSGPACK_OBJECT_BIN) {
        s = key->via.bin.ptr;
        len = key->via.bin.size;

    } else {
        return -1;
    }

    if (hint < n && fc_key_is(&keys[hint], s, len)) {
        return hint;
    }

    for (i = 0; i < n; i++) {
        if (fc_key_is(&keys[i], s, len)) {
            return i;
        }
    }

    return -1;
}


/*
 * A str or bin object as an fc_str_t pointing into the payload.  msgpack_unpack
 * references the input for str/bin rather than copying into the zone; the
 * range check keeps that assumption from ever turning into a pointer to the
 * freed zone.
 */
static int
fc_get_str(const msgpack_object *o, const uint8_t *payload, size_t len,
    fc_str_t *out)
{
    const char  *s;
    size_t       n;
    uintptr_t    lo, hi, at;

    if (o->type == MSGPACK_OBJECT_STR) {
        s = o->via.str.ptr;
        n = o->via.str.size;

    } else if (o->type == MSGPACK_OBJECT_BIN) {
        s = o->via.bin.ptr;
        n = o->via.bin.size;

    } else {
        return FC_ESCHEMA;
    }

    lo = (uintptr_t) payload;
    hi = lo + len;
    at = (uintptr_t) s;

    if (at < lo || at > hi || n > hi - at) {
        return FC_EMSGPACK;
    }

    out->data = s;
    out->len = n;

    return FC_OK;
}


static int
fc_get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        return FC_ESCHEMA;
    }

    *out = o->via.u64;

    return FC_OK;
}


/* An HTTP status: three digits. */
static int
fc_get_status(const msgpack_object *o, uint32_t *out)
{
    uint64_t  v;

    if (fc_get_uint(o, 999, &v) != FC_OK || v < 100) {
        return FC_ESCHEMA;
    }

    *out = (uint32_t) v;

    return FC_OK;
}


/* Validates a header array: [[name, value], ...], at most FC_MAX_HEADERS. */
static int
fc_check_headers(const msgpack_object *o, const uint8_t *payload, size_t len)
{
    int                    rc;
    uint32_t               i;
    fc_str_t               s;
    const msgpack_object  *pair;

    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return FC_ESCHEMA;
    }

    if (o->via.array.size > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    for (i = 0; i < o->via.array.size; i++) {
        pair = &o->via.array.ptr[i];

        if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2) {
            return FC_ESCHEMA;
        }

        rc = fc_get_str(&pair->via.array.ptr[0], payload, len, &s);
        if (rc != FC_OK) {
            return rc;
        }

        rc = fc_get_str(&pair->via.array.ptr[1], payload, len, &s);
        if (rc != FC_OK) {
            return rc;
        }
    }

    return FC_OK;
}


/* Copies a header array checked by fc_check_headers(); the only allocation
 * a decoder makes, done last so a failed decode never leaves one behind. */
static int
fc_copy_headers(const msgpack_object *o, const uint8_t *payload, size_t len,
    fc_alloc_pt alloc, void *alloc_ctx, fc_header_t **headers,
    size_t *nheaders)
{
    size_t                 i, n;
    fc_header_t           *h;
    const msgpack_object  *pair;

    *headers = NULL;
    *nheaders = 0;

    if (o == NULL || o->via.array.size == 0) {
        return FC_OK;
    }

    n = o->via.array.size;

    if (alloc == NULL) {
        return FC_ENOMEM;
    }

    h = alloc(alloc_ctx, n * sizeof(fc_header_t));
    if (h == NULL) {
        return FC_ENOMEM;
    }

    for (i = 0; i < n; i++) {
        pair = &o->via.array.ptr[i];
        (void) fc_get_str(&pair->via.array.ptr[0], payload, len, &h[i].name);
        (void) fc_get_str(&pair->via.array.ptr[1], payload, len, &h[i].value);
    }

    *headers = h;
    *nheaders = n;

    return FC_OK;
}


enum {
    FC_REQ_FUNCTION = 0,
    FC_REQ_METHOD,
    FC_REQ_URI,
    FC_REQ_VERSION,
    FC_REQ_HEADERS,
    FC_REQ_REMOTE_ADDR,
    FC_REQ_REMOTE_PORT,
    FC_REQ_SCHEME,
    FC_REQ_HOST,
    FC_REQ_REQUEST_ID,
    FC_REQ_CONTENT_LENGTH,
    FC_REQ_DEADLINE_MS,
    FC_REQ_NKEYS
};


/* Decodes the value of one known key of a message into `out`. */
typedef int (*fc_field_pt)(int key, const msgpack_object *v,
    const uint8_t *payload, size_t len, void *out);


/*
 * Walks a message's map: each known key at most once (a repeated one is
 * ambiguous), unknown keys skipped (forward compatible), every required key
 * present.  The value of key `headers_key` is handed back, to be copied only
 * once the whole message is known to be good.
 */
static int
fc_decode_fields(const msgpack_object *root, const uint8_t *payload,
    size_t len, const fc_key_t *keys, int nkeys, unsigned required,
    int headers_key, fc_field_pt field, void *out,
    const msgpack_object **headers)
{
    int                    rc, key, hint;
    uint32_t               i;
    unsigned               seen;
    const msgpack_object  *v;

    seen = 0;
    hint = 0;

    for (i = 0; i < root->via.map.size; i++) {
        key = fc_key_index(&root->via.map.ptr[i].key, keys, nkeys, hint);
        if (key < 0) {
            continue;
        }

        hint = key + 1;

        if (seen & (1u << key)) {
            return FC_ESCHEMA;
        }
        seen |= 1u << key;

        v = &root->via.map.ptr[i].val;

        if (key == headers_key) {
            rc = fc_check_headers(v, payload, len);
            *headers = v;
        } else {
            rc = field(key, v, payload, len, out);
        }

        if (rc != FC_OK) {
            return rc;
        }
    }

    return (seen & required) == required ? FC_OK : FC_ESCHEMA;
}


/*
 * The REQUEST decoder: one pass over the payload's bytes, straight into
 * fc_request_t.  The runner decodes a REQUEST per request; the tree
 * decoders' pre-check walk, msgpack-c's object tree in its zone and the
 * walk over that tree were three passes where one does.  Nothing is
 * allocated but the header array, last.  A payload this pass finds of the
 * wrong shape is checked whole once more (fc_msgpack_check), so that it
 * fails as the tree decoders fail: malformed msgpack anywhere in it is
 * FC_EMSGPACK before any schema error.
 */

typedef struct {
    const uint8_t  *pos;
    const uint8_t  *end;
} fc_cursor_t;


/* A big-endian length or integer of n (1, 2, 4, 8) bytes after the type byte. */
static int
fc_read_be(fc_cursor_t *c, size_t n, uint64_t *out)
{
    size_t          i;
    uint64_t        v;
    const uint8_t  *p = c->pos + 1;

    if ((size_t) (c->end - c->pos) <= n) {
        return FC_EMSGPACK;
    }

    v = 0;
    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }

    c->pos = p + n;
    *out = v;

    return FC_OK;
}


/* A str or bin, as a slice of the payload. */
static int
fc_read_str(fc_cursor_t *c, fc_str_t *out)
{
    int       rc;
    uint8_t   b;
    uint64_t  n;

    if (c->pos == c->end) {
        return FC_EMSGPACK;
    }

    b = *c->pos;

    if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
        c->pos++;

    } else {
        switch (b) {
        case 0xc4: case 0xd9: rc = fc_read_be(c, 1, &n); break;
        case 0xc5: case 0xda: rc = fc_read_be(c, 2, &n); break;
        case 0xc6: case 0xdb: rc = fc_read_be(c, 4, &n); break;
        default:
            return FC_ESCHEMA;
        }

        if (rc != FC_OK) {
            return rc;
        }
    }

    if (n > (uint64_t) (c->end - c->pos)) {
        return FC_EMSGPACK;
    }

    out->data = (const char *) c->pos;
    out->len = (size_t) n;
    c->pos += n;

    return FC_OK;
}


/*
 * Any integer form.  As in msgpack-c, a signed form holding a value >= 0 is
 * a positive integer: *negative is 0 and *u the value; else *negative is 1
 * and *u the value's two's complement.
 */
static int
fc_read_int(fc_cursor_t *c, uint64_t *u, int *negative)
{
    int       rc;
    uint8_t   b;
    int64_t   s;
    uint64_t  v;

    if (c->pos == c->end) {
        return FC_EMSGPACK;
    }

    b = *c->pos;

    if (b <= 0x7f) {
        c->pos++;
        *u = b;
        *negative = 0;
        return FC_OK;
    }

    if (b >= 0xe0) {
        c->pos++;
        *u = (uint64_t) (int64_t) (int8_t) b;
        *negative = 1;
        return FC_OK;
    }

    switch (b) {
    case 0xcc: case 0xd0: rc = fc_read_be(c, 1, &v); break;
    case 0xcd: case 0xd1: rc = fc_read_be(c, 2, &v); break;
    case 0xce: case 0xd2: rc = fc_read_be(c, 4, &v); break;
    case 0xcf: case 0xd3: rc = fc_read_be(c, 8, &v); break;
    default:
        return FC_ESCHEMA;
    }

    if (rc != FC_OK) {
        return rc;
    }

    switch (b) {
    case 0xd0: s = (int8_t) v; break;
    case 0xd1: s = (int16_t) v; break;
    case 0xd2: s = (int32_t) v; break;
    case 0xd3: s = (int64_t) v; break;
    default:
        *u = v;
        *negative = 0;
        return FC_OK;
    }

    *u = (uint64_t) s;
    *negative = s < 0;

    return FC_OK;
}


static int
fc_read_uint(fc_cursor_t *c, uint64_t max, uint64_t *out)
{
    int       rc, negative;
    uint64_t  v;

    rc = fc_read_int(c, &v, &negative);
    if (rc != FC_OK) {
        return rc;
    }

    if (negative || v > max) {
        return FC_ESCHEMA;
    }

    *out = v;

    return FC_OK;
}


/* A map (first == 0x80) or array (0x90) header: its count. */
static int
fc_read_container(fc_cursor_t *c, uint8_t first, uint64_t *count)
{
    uint8_t  b;

    if (c->pos == c->end) {
        return FC_EMSGPACK;
    }

    b = *c->pos;

    if ((b & 0xf0) == first) {
        c->pos++;
        *count = b & 0x0f;
        return FC_OK;
    }

    /* 0xde, 0xdf: map16, map32; 0xdc, 0xdd: array16, array32 */
    if (b == (first == 0x80 ? 0xde : 0xdc)) {
        return fc_read_be(c, 2, count);
    }

    if (b == (first == 0x80 ? 0xdf : 0xdd)) {
        return fc_read_be(c, 4, count);
    }

    return FC_ESCHEMA;
}


/* Skips one value nested in the root map. */
static int
fc_skip_value(fc_cursor_t *c, const uint8_t *payload)
{
    int     rc;
    size_t  pos, len;

    pos = (size_t) (c->pos - payload);
    len = (size_t) (c->end - payload);

    rc = fc_msgpack_skip(payload, len, &pos, FC_MSGPACK_MAX_DEPTH - 1);
    c->pos = payload + pos;

    return rc;
}


/* [[name, value], ...]: checked, counted and skipped; copied later. */
static int
fc_read_headers(fc_cursor_t *c, size_t *nheaders)
{
    int       rc;
    uint64_t  i, n, pair;
    fc_str_t  s;

    rc = fc_read_container(c, 0x90, &n);
    if (rc != FC_OK) {
        return rc;
    }

    if (n > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    for (i = 0; i < n; i++) {
        rc = fc_read_container(c, 0x90, &pair);
        if (rc == FC_OK && pair != 2) {
            rc = FC_ESCHEMA;
        }
        if (rc == FC_OK) {
            rc = fc_read_str(c, &s);
        }
        if (rc == FC_OK) {
            rc = fc_read_str(c, &s);
        }
        if (rc != FC_OK) {
            return rc;
        }
    }

    *nheaders = (size_t) n;

    return FC_OK;
}


/* Copies the header array fc_read_headers() checked, from its start. */
static void
fc_copy_checked_headers(const uint8_t *at, const uint8_t *end,
    fc_header_t *h, size_t n)
{
    size_t       i;
    uint64_t     count;
    fc_cursor_t  c;

    c.pos = at;
    c.end = end;

    (void) fc_read_container(&c, 0x90, &count);

    for (i = 0; i < n; i++) {
        (void) fc_read_container(&c, 0x90, &count);
        (void) fc_read_str(&c, &h[i].name);
        (void) fc_read_str(&c, &h[i].value);
    }
}


static int
fc_request_read_field(int key, fc_cursor_t *c, fc_request_t *r)
{
    int       rc, negative;
    uint64_t  u;

    switch (key) {
    case FC_REQ_FUNCTION:
        return fc_read_str(c, &r->function);
    case FC_REQ_METHOD:
        return fc_read_str(c, &r->method);
    case FC_REQ_URI:
        return fc_read_str(c, &r->uri);
    case FC_REQ_VERSION:
        return fc_read_str(c, &r->version);
    case FC_REQ_REMOTE_ADDR:
        return fc_read_str(c, &r->remote_addr);
    case FC_REQ_REMOTE_PORT:
        rc = fc_read_uint(c, 65535, &u);
        if (rc == FC_OK) {
            r->remote_port = (uint32_t) u;
        }
        return rc;
    case FC_REQ_SCHEME:
        return fc_read_str(c, &r->scheme);
    case FC_REQ_HOST:
        return fc_read_str(c, &r->host);
    case FC_REQ_REQUEST_ID:
        return fc_read_str(c, &r->request_id);
    case FC_REQ_CONTENT_LENGTH:
        rc = fc_read_int(c, &u, &negative);
        if (rc != FC_OK) {
            return rc;
        }
        if (negative ? (int64_t) u != -1 : u > INT64_MAX) {
            return FC_ESCHEMA;
        }
        r->content_length = (int64_t) u;
        return FC_OK;
    case FC_REQ_DEADLINE_MS:
        return fc_read_uint(c, UINT64_MAX, &r->deadline_ms);
    default:
        return FC_OK;
    }
}


int
fc_request_decode(const uint8_t *payload, size_t len, fc_request_t *req,
    fc_alloc_pt alloc, void *alloc_ctx)
{
    static const fc_key_t     keys[FC_REQ_NKEYS] = {
        fc_key("function"), fc_key("method"), fc_key("uri"),
        fc_key("version"), fc_key("headers"), fc_key("remote_addr"),
        fc_key("remote_port"), fc_key("scheme"), fc_key("host"),
        fc_key("request_id"), fc_key("content_length"),
        fc_key("deadline_ms")
    };
    static const unsigned     required = (1u << FC_REQ_FUNCTION)
                                         | (1u << FC_REQ_METHOD)
                                         | (1u << FC_REQ_URI);

    int             rc, key, hint;
    size_t          nheaders;
    uint64_t        i, n;
    unsigned        seen;
    fc_str_t        name;
    fc_cursor_t     c;
    fc_request_t    r;
    fc_header_t    *h;
    const uint8_t  *headers_at;

    if (len > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    c.pos = payload;
    c.end = payload + len;

    memset(&r, 0, sizeof(fc_request_t));
    r.content_length = -1;
    headers_at = NULL;
    nheaders = 0;
    seen = 0;
    hint = 0;

    rc = fc_read_container(&c, 0x80, &n);

    for (i = 0; rc == FC_OK && i < n; i++) {

        rc = fc_read_str(&c, &name);

        if (rc == FC_ESCHEMA) {
            /* a key that is not a string: unknown, skipped with its value */
            rc = fc_skip_value(&c, payload);
            if (rc == FC_OK) {
                rc = fc_skip_value(&c, payload);
            }
            continue;
        }

        if (rc != FC_OK) {
            break;
        }

        key = -1;

        if (hint < FC_REQ_NKEYS
            && fc_key_is(&keys[hint], name.data, name.len))
        {
            key = hint;

        } else {
            for (key = FC_REQ_NKEYS - 1; key >= 0; key--) {
                if (fc_key_is(&keys[key], name.data, name.len)) {
                    break;
                }
            }
        }

        if (key < 0) {
            rc = fc_skip_value(&c, payload);
            continue;
        }

        hint = key + 1;

        if (seen & (1u << key)) {
            rc = FC_ESCHEMA;        /* a repeated key is ambiguous */
            break;
        }
        seen |= 1u << key;

        if (key == FC_REQ_HEADERS) {
            headers_at = c.pos;
            rc = fc_read_headers(&c, &nheaders);

        } else {
            rc = fc_request_read_field(key, &c, &r);
        }
    }

    if (rc == FC_OK && c.pos != c.end) {
        rc = FC_EMSGPACK;           /* trailing bytes */
    }

    if (rc == FC_OK && (seen & required) != required) {
        rc = FC_ESCHEMA;
    }

    if (rc != FC_OK) {
        if (rc != FC_EMSGPACK && fc_msgpack_check(payload, len) != FC_OK) {
            return FC_EMSGPACK;
        }
        return rc;
    }

    if (nheaders > 0) {
        if (alloc == NULL) {
            return FC_ENOMEM;
        }

        h = alloc(alloc_ctx, nheaders * sizeof(fc_header_t));
        if (h == NULL) {
            return FC_ENOMEM;
        }

        fc_copy_checked_headers(headers_at, c.end, h, nheaders);
        r.headers = h;
        r.nheaders = nheaders;
    }

    *req = r;

    return FC_OK;
}


enum {
    FC_RESP_STATUS = 0,
    FC_RESP_HEADERS,
    FC_RESP_COLD_START,
    FC_RESP_INSTANCE,
    FC_RESP_NKEYS
};


static int fc_response_decode_msgpack(struct msgpack_zone *zone,
    const uint8_t *payload, size_t len, fc_response_t *resp,
    fc_alloc_pt alloc, void *alloc_ctx);


static int
fc_response_field(int key, const msgpack_object *v, const uint8_t *payload,
    size_t len, void *out)
{
    fc_response_t  *r = out;

    switch (key) {
    case FC_RESP_STATUS:
        return fc_get_status(v, &r->status);
    case FC_RESP_COLD_START:
        if (v->type != MSGPACK_OBJECT_BOOLEAN) {
            return FC_ESCHEMA;
        }
        r->cold_start = v->via.boolean ? 1 : 0;
        return FC_OK;
    case FC_RESP_INSTANCE:
        return fc_get_str(v, payload, len, &r->instance);
    default:
        return FC_OK;
    }
}


/*
 * The RESPONSE read in one pass without msgpack-c (issue 11: msgpack_unpack
 * into a zone and the walk over its objects were ~2,200 instructions a
 * response in the module), with the REQUEST decoder's cursor: a map of the
 * four known keys, each once, with the types the general decoder accepts.
 * Any other shape, unknown keys and a root map32 included, and any error is
 * FC_SLOW_PATH: msgpack-c then decides, so both give the same result for
 * every payload (ResponseSpan tests).
 */
#define FC_SLOW_PATH  1


/* Header pairs stored in out, read with the REQUEST decoder's cursor. */
static int
fc_read_header_pairs(fc_cursor_t *c, uint64_t n, fc_header_t *out)
{
    uint64_t  i, pair;

    for (i = 0; i < n; i++) {
        if (fc_read_container(c, 0x90, &pair) != FC_OK || pair != 2
            || fc_read_str(c, &out[i].name) != FC_OK
            || fc_read_str(c, &out[i].value) != FC_OK)
        {
            return FC_SLOW_PATH;
        }
    }

    return FC_OK;
}


static int
fc_response_decode_direct(const uint8_t *payload, size_t len,
    fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx)
{
    unsigned          seen;
    uint64_t          nkeys, nheaders, status;
    fc_str_t          key;
    fc_cursor_t       c;
    fc_header_t       scratch[FC_MAX_HEADERS];    /* 8 KiB: until it is good */
    fc_response_t     r;

    /* A root map32 the encoder never writes: left to msgpack-c, which the
     * tests use to compare the two readers. */
    if (len == 0 || len > FC_MAX_META_PAYLOAD || payload[0] == 0xdf) {
        return FC_SLOW_PATH;
    }

    c.pos = payload;
    c.end = payload + len;

    if (fc_read_container(&c, 0x80, &nkeys) != FC_OK) {
        return FC_SLOW_PATH;
    }

    memset(&r, 0, sizeof(fc_response_t));
    seen = 0;
    nheaders = 0;

    while (nkeys--) {
        if (fc_read_str(&c, &key) != FC_OK || c.pos == c.end) {
            return FC_SLOW_PATH;
        }

        if (key.len == 6 && memcmp(key.data, "status", 6) == 0) {
            if ((seen & (1u << FC_RESP_STATUS))
                || fc_read_uint(&c, 999, &status) != FC_OK || status < 100)
            {
                return FC_SLOW_PATH;
            }
            seen |= 1u << FC_RESP_STATUS;

            r.status = (uint32_t) status;

        } else if (key.len == 7 && memcmp(key.data, "headers", 7) == 0) {
            if ((seen & (1u << FC_RESP_HEADERS))
                || fc_read_container(&c, 0x90, &nheaders) != FC_OK
                || nheaders > FC_MAX_HEADERS
                || fc_read_header_pairs(&c, nheaders, scratch) != FC_OK)
            {
                return FC_SLOW_PATH;
            }
            seen |= 1u << FC_RESP_HEADERS;

        } else if (key.len == 10 && memcmp(key.data, "cold_start", 10) == 0) {
            if ((seen & (1u << FC_RESP_COLD_START))
                || (*c.pos != 0xc2 && *c.pos != 0xc3))
            {
                return FC_SLOW_PATH;
            }
            seen |= 1u << FC_RESP_COLD_START;

            r.cold_start = (*c.pos++ == 0xc3);

        } else if (key.len == 8 && memcmp(key.data, "instance", 8) == 0) {
            if ((seen & (1u << FC_RESP_INSTANCE))
                || fc_read_str(&c, &r.instance) != FC_OK)
            {
                return FC_SLOW_PATH;
            }
            seen |= 1u << FC_RESP_INSTANCE;

        } else {
            return FC_SLOW_PATH;
        }
    }

    if (c.pos != c.end || !(seen & (1u << FC_RESP_STATUS))) {
        return FC_SLOW_PATH;
    }

    /* the one allocation, once the whole message is good */

    if (nheaders > 0) {
        if (alloc == NULL) {
            return FC_ENOMEM;
        }

        r.headers = alloc(alloc_ctx, nheaders * sizeof(fc_header_t));
        if (r.headers == NULL) {
            return FC_ENOMEM;
        }

        memcpy(r.headers, scratch, nheaders * sizeof(fc_header_t));
        r.nheaders = nheaders;
    }

    *resp = r;

    return FC_OK;
}


int
fc_response_decode_in_zone(struct msgpack_zone *zone, const uint8_t *payload,
    size_t len, fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx)
{
    int                    rc;

    rc = fc_response_decode_direct(payload, len, resp, alloc, alloc_ctx);
    if (rc != FC_SLOW_PATH) {
        return rc;
    }

    return fc_response_decode_msgpack(zone, payload, len, resp, alloc,
                                      alloc_ctx);
}


/* Any RESPONSE msgpack can encode, by msgpack-c. */
static int
fc_response_decode_msgpack(struct msgpack_zone *zone, const uint8_t *payload,
    size_t len, fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx)
{
    static const fc_key_t     keys[FC_RESP_NKEYS] = {
        fc_key("status"), fc_key("headers"), fc_key("cold_start"),
        fc_key("instance")
    };

    int                    rc;
    fc_response_t          r;
    msgpack_object         root;
    const msgpack_object  *headers;

    rc = fc_unpack_map(payload, len, zone, &root);

    if (rc == FC_OK) {
        memset(&r, 0, sizeof(fc_response_t));
        headers = NULL;

        rc = fc_decode_fields(&root, payload, len, keys, FC_RESP_NKEYS,
                              1u << FC_RESP_STATUS, FC_RESP_HEADERS,
                              fc_response_field, &r, &headers);
    }

    if (rc == FC_OK) {
        rc = fc_copy_headers(headers, payload, len, alloc, alloc_ctx,
                             &r.headers, &r.nheaders);
    }

    if (rc == FC_OK) {
        *resp = r;
    }

    msgpack_zone_clear(zone);

    return rc;
}


int
fc_response_decode(const uint8_t *payload, size_t len,
    fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx)
{
    int           rc;
    msgpack_zone  zone;

    if (!msgpack_zone_init(&zone, FC_ZONE_CHUNK_SIZE)) {
        return FC_ENOMEM;
    }

    rc = fc_response_decode_in_zone(&zone, payload, len, resp, alloc,
                                    alloc_ctx);

    msgpack_zone_destroy(&zone);

    return rc;
}


enum {
    FC_ERR_STATUS = 0,
    FC_ERR_CODE,
    FC_ERR_MESSAGE,
    FC_ERR_NKEYS
};


static int
fc_error_field(int key, const msgpack_object *v, const uint8_t *payload,
    size_t len, void *out)
{
    fc_error_t  *e = out;

    switch (key) {
    case FC_ERR_STATUS:
        return fc_get_status(v, &e->status);
    case FC_ERR_CODE:
        return fc_get_str(v, payload, len, &e->code);
    case FC_ERR_MESSAGE:
        return fc_get_str(v, payload, len, &e->message);
    default:
        return FC_OK;
    }
}


int
fc_error_decode_in_zone(struct msgpack_zone *zone, const uint8_t *payload,
    size_t len, fc_error_t *err)
{
    static const fc_key_t     keys[FC_ERR_NKEYS] = {
        fc_key("status"), fc_key("code"), fc_key("message")
    };
    static const unsigned     required = (1u << FC_ERR_STATUS)
                                         | (1u << FC_ERR_CODE);

    int             rc;
    fc_error_t      e;
    msgpack_object  root;

    rc = fc_unpack_map(payload, len, zone, &root);

    if (rc == FC_OK) {
        memset(&e, 0, sizeof(fc_error_t));

        rc = fc_decode_fields(&root, payload, len, keys, FC_ERR_NKEYS,
                              required, -1, fc_error_field, &e, NULL);
    }

    if (rc == FC_OK) {
        *err = e;
    }

    msgpack_zone_clear(zone);

    return rc;
}


int
fc_error_decode(const uint8_t *payload, size_t len, fc_error_t *err)
{
    int           rc;
    msgpack_zone  zone;

    if (!msgpack_zone_init(&zone, FC_ZONE_CHUNK_SIZE)) {
        return FC_ENOMEM;
    }

    rc = fc_error_decode_in_zone(&zone, payload, len, err);

    msgpack_zone_destroy(&zone);

    return rc;
}


/* ---- the nginx module's entry points (issue 11) ------------------------ */

/*
 * The same messages as fc_request_encode() and fc_response_decode(), at
 * less cost per message for a caller that makes many: msgpack-c still
 * packs and unpacks every token, but the packer writes through a callback
 * that only copies, the keys need no strlen(), the bound comes from the
 * lengths the caller sums anyway, and the decoder's zone is the caller's,
 * kept from message to message and cleared instead of created and freed.
 */


/* the map header, 8 string headers, 3 integers and the headers array's */
#define FC_REQUEST_FIXED_SIZE                                                 \
    (1 + FC_REQUEST_KEYS_SIZE + 8 * FC_MP_STR_HDR + 3 * FC_MP_INT             \
     + FC_MP_CONT_HDR)

/* one header pair: a fixarray byte and two string headers */
#define FC_HEADER_PAIR_SIZE  (1 + 2 * FC_MP_STR_HDR)


struct msgpack_zone *
fc_zone_create(void)
{
    return msgpack_zone_new(FC_ZONE_CHUNK_SIZE);
}


void
fc_zone_destroy(struct msgpack_zone *zone)
{
    if (zone) {
        msgpack_zone_free(zone);
    }
}


size_t
fc_request_size_bound_sum(size_t strings_len, size_t nheaders)
{
    size_t  fixed;

    fixed = FC_REQUEST_FIXED_SIZE;

    if (nheaders > FC_MAX_HEADERS
        || strings_len > SIZE_MAX - fixed - nheaders * FC_HEADER_PAIR_SIZE)
    {
        return SIZE_MAX;
    }

    return fixed + nheaders * FC_HEADER_PAIR_SIZE + strings_len;
}


/* The packer's output: bytes are copied while they fit, else it is full. */
typedef struct {
    uint8_t  *pos;
    uint8_t  *end;
    int       full;
} fc_span_t;


static int
fc_span_write(void *data, const char *buf, size_t len)
{
    uint8_t    *p;
    fc_span_t  *s = data;

    if (len > (size_t) (s->end - s->pos)) {
        s->full = 1;
        s->pos = s->end;
        return -1;
    }

    p = s->pos;
    s->pos += len;

    /*
     * most writes are a type byte or a short string: no call for those, and
     * no loop either: two overlapping fixed-size copies cover 2..16 bytes
     */

    if (len == 1) {
        *p = (uint8_t) *buf;

    } else if (len <= 3) {
        if (len) {
            p[0] = (uint8_t) buf[0];
            p[len - 1] = (uint8_t) buf[len - 1];
            p[len >> 1] = (uint8_t) buf[len >> 1];
        }

    } else if (len <= 8) {
        memcpy(p, buf, 4);
        memcpy(p + len - 4, buf + len - 4, 4);

    } else if (len <= 16) {
        memcpy(p, buf, 8);
        memcpy(p + len - 8, buf + len - 8, 8);

    } else {
        memcpy(p, buf, len);
    }

    return 0;
}


/* The REQUEST keys in msgpack-c's bytes, packed once by the caller. */
static const char *const  fc_request_key_names[FC_REQUEST_NKEYS] = {
    "function", "method", "uri", "version", "headers", "remote_addr",
    "remote_port", "scheme", "host", "request_id", "content_length",
    "deadline_ms"
};


void
fc_request_keys_init(fc_request_keys_t *keys)
{
    int             k;
    size_t          len;
    fc_span_t       s;
    msgpack_packer  pk;

    s.pos = keys->bytes;
    s.end = keys->bytes + sizeof(keys->bytes);
    s.full = 0;

    msgpack_packer_init(&pk, &s, fc_span_write);

    for (k = 0; k < FC_REQUEST_NKEYS; k++) {
        len = strlen(fc_request_key_names[k]);
        msgpack_pack_str_with_body(&pk, fc_request_key_names[k], len);
        keys->end[k] = (uint16_t) (s.pos - keys->bytes);
    }
}


/* a key's bytes, as one copy instead of two packer calls */
#define fc_span_key(s, keys, k)                                               \
    (void) fc_span_write(s, (const char *) (keys)->bytes                      \
                            + ((k) ? (keys)->end[(k) - 1] : 0),               \
                         (keys)->end[k] - ((k) ? (keys)->end[(k) - 1] : 0))

#define fc_span_str(pk, s)                                                    \
    msgpack_pack_str_with_body(pk, (s)->data, (s)->len)


int
fc_request_encode_span(const fc_request_t *req, const fc_request_keys_t *keys,
    uint8_t *buf, size_t cap, size_t *written)
{
    size_t          i;
    fc_span_t       s;
    msgpack_packer  pk;

    if (req->nheaders > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    /* also keeps every string length within msgpack's u32 length field */

    if (cap > FC_MAX_META_PAYLOAD) {
        cap = FC_MAX_META_PAYLOAD;
    }

    s.pos = buf;
    s.end = buf + cap;
    s.full = 0;

    msgpack_packer_init(&pk, &s, fc_span_write);

    msgpack_pack_map(&pk, FC_REQUEST_NKEYS);

    fc_span_key(&s, keys, 0);
    fc_span_str(&pk, &req->function);
    fc_span_key(&s, keys, 1);
    fc_span_str(&pk, &req->method);
    fc_span_key(&s, keys, 2);
    fc_span_str(&pk, &req->uri);
    fc_span_key(&s, keys, 3);
    fc_span_str(&pk, &req->version);

    fc_span_key(&s, keys, 4);
    msgpack_pack_array(&pk, req->nheaders);

    for (i = 0; i < req->nheaders && !s.full; i++) {
        msgpack_pack_array(&pk, 2);
        fc_span_str(&pk, &req->headers[i].name);
        fc_span_str(&pk, &req->headers[i].value);
    }

    fc_span_key(&s, keys, 5);
    fc_span_str(&pk, &req->remote_addr);
    fc_span_key(&s, keys, 6);
    msgpack_pack_uint32(&pk, req->remote_port);
    fc_span_key(&s, keys, 7);
    fc_span_str(&pk, &req->scheme);
    fc_span_key(&s, keys, 8);
    fc_span_str(&pk, &req->host);
    fc_span_key(&s, keys, 9);
    fc_span_str(&pk, &req->request_id);
    fc_span_key(&s, keys, 10);
    msgpack_pack_int64(&pk, req->content_length);
    fc_span_key(&s, keys, 11);
    msgpack_pack_uint64(&pk, req->deadline_ms);

    if (s.full) {
        return FC_ENOSPACE;
    }

    *written = (size_t) (s.pos - buf);

    return FC_OK;
}
