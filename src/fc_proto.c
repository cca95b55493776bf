/*
 * fc wire protocol v1 codec (DESIGN §3).  See fc_proto.h for the contract.
 *
 * Compiled both by CMake (C11) and inside nginx (gcc default std, nginx's
 * warning flags), so: nginx-like style, no C++ keywords as identifiers, no
 * global mutable state, no allocation of its own (a decoded header array is
 * the caller's, from its allocator).  msgpack is read and written in place;
 * msgpack-c is the tests' reference for both.
 */

#include <limits.h>
#include <string.h>

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
 * The payload is written straight into the caller's buffer, in the smallest
 * msgpack form of each value (the bytes msgpack-c's packer makes; the unit
 * tests decode every message with msgpack-c too).  Done here rather than
 * through msgpack_packer, whose write callback per token was a sixth of the
 * module's work per request.  The writer never fails mid-way: it keeps
 * counting what would have been written, so the end result can tell "buffer
 * too small" (FC_ENOSPACE) from "over the protocol limit" (FC_ETOOBIG).
 */
typedef struct {
    uint8_t  *buf;
    size_t    cap;
    size_t    used;
    int       oversize;
} fc_writer_t;


/*
 * Room for len bytes at the end, or NULL when the buffer is short or the
 * payload over the limit; either way the length is counted.
 */
static inline uint8_t *
fc_reserve(fc_writer_t *w, size_t len)
{
    uint8_t  *p;

    if (len > FC_MAX_META_PAYLOAD || w->used > FC_MAX_META_PAYLOAD) {
        w->oversize = 1;
        return NULL;
    }

    p = (w->used <= w->cap && len <= w->cap - w->used) ? w->buf + w->used
                                                        : NULL;
    w->used += len;

    return p;
}


static inline void
fc_put_byte(fc_writer_t *w, uint8_t b)
{
    uint8_t  *p;

    p = fc_reserve(w, 1);
    if (p) {
        *p = b;
    }
}


/* A type byte followed by `n` big-endian bytes of v. */
static void
fc_put_be(fc_writer_t *w, uint8_t type, uint64_t v, size_t n)
{
    size_t    i;
    uint8_t  *p;

    p = fc_reserve(w, n + 1);
    if (p == NULL) {
        return;
    }

    p[0] = type;
    for (i = n; i > 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}


static void
fc_put_uint(fc_writer_t *w, uint64_t v)
{
    if (v < 128) {
        fc_put_byte(w, (uint8_t) v);            /* positive fixint */

    } else if (v <= UINT8_MAX) {
        fc_put_be(w, 0xcc, v, 1);

    } else if (v <= UINT16_MAX) {
        fc_put_be(w, 0xcd, v, 2);

    } else if (v <= UINT32_MAX) {
        fc_put_be(w, 0xce, v, 4);

    } else {
        fc_put_be(w, 0xcf, v, 8);
    }
}


static void
fc_put_int(fc_writer_t *w, int64_t v)
{
    if (v >= 0) {
        fc_put_uint(w, (uint64_t) v);

    } else if (v >= -32) {
        fc_put_byte(w, (uint8_t) (0xe0 | (v & 0x1f)));  /* negative fixint */

    } else if (v >= INT8_MIN) {
        fc_put_be(w, 0xd0, (uint64_t) v, 1);

    } else if (v >= INT16_MIN) {
        fc_put_be(w, 0xd1, (uint64_t) v, 2);

    } else if (v >= INT32_MIN) {
        fc_put_be(w, 0xd2, (uint64_t) v, 4);

    } else {
        fc_put_be(w, 0xd3, (uint64_t) v, 8);
    }
}


/* An array (0x90) or map (0x80) header. */
static void
fc_put_container(fc_writer_t *w, uint8_t fix, size_t n)
{
    if (n < 16) {
        fc_put_byte(w, (uint8_t) (fix | n));

    } else if (n <= UINT16_MAX) {
        fc_put_be(w, fix == 0x90 ? 0xdc : 0xde, n, 2);

    } else {
        fc_put_be(w, fix == 0x90 ? 0xdd : 0xdf, n, 4);
    }
}


/* A short string (< 32 bytes: fixstr), header and body in one reserve. */
static inline void
fc_put_fixstr(fc_writer_t *w, const char *data, size_t len)
{
    uint8_t  *p;

    p = fc_reserve(w, 1 + len);
    if (p) {
        p[0] = (uint8_t) (0xa0 | len);
        if (len) {
            memcpy(p + 1, data, len);
        }
    }
}


static void
fc_put_str(fc_writer_t *w, const fc_str_t *s)
{
    uint8_t  *p;

    if (s->len > FC_MAX_META_PAYLOAD) {
        /* also keeps the u32 length field from truncating */
        w->oversize = 1;
        return;
    }

    if (s->len < 32) {
        fc_put_fixstr(w, s->data, s->len);
        return;
    }

    if (s->len <= UINT8_MAX) {
        fc_put_be(w, 0xd9, s->len, 1);

    } else if (s->len <= UINT16_MAX) {
        fc_put_be(w, 0xda, s->len, 2);

    } else {
        fc_put_be(w, 0xdb, s->len, 4);
    }

    p = fc_reserve(w, s->len);
    if (p) {
        memcpy(p, s->data, s->len);
    }
}


/* A map key: a literal. */
#define fc_put_key(w, key)  fc_put_fixstr(w, key, sizeof(key) - 1)


static void
fc_put_headers(fc_writer_t *w, const fc_header_t *headers, size_t nheaders)
{
    size_t  i;

    fc_put_container(w, 0x90, nheaders);

    for (i = 0; i < nheaders; i++) {
        fc_put_container(w, 0x90, 2);
        fc_put_str(w, &headers[i].name);
        fc_put_str(w, &headers[i].value);
    }
}


static void
fc_writer_init(fc_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->used = 0;
    w->oversize = 0;
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
    fc_writer_t  w;

    if (req->nheaders > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    fc_writer_init(&w, buf, cap);

    fc_put_container(&w, 0x80, 12);

    fc_put_key(&w, "function");
    fc_put_str(&w, &req->function);
    fc_put_key(&w, "method");
    fc_put_str(&w, &req->method);
    fc_put_key(&w, "uri");
    fc_put_str(&w, &req->uri);
    fc_put_key(&w, "version");
    fc_put_str(&w, &req->version);
    fc_put_key(&w, "headers");
    fc_put_headers(&w, req->headers, req->nheaders);
    fc_put_key(&w, "remote_addr");
    fc_put_str(&w, &req->remote_addr);
    fc_put_key(&w, "remote_port");
    fc_put_uint(&w, req->remote_port);
    fc_put_key(&w, "scheme");
    fc_put_str(&w, &req->scheme);
    fc_put_key(&w, "host");
    fc_put_str(&w, &req->host);
    fc_put_key(&w, "request_id");
    fc_put_str(&w, &req->request_id);
    fc_put_key(&w, "content_length");
    fc_put_int(&w, req->content_length);
    fc_put_key(&w, "deadline_ms");
    fc_put_uint(&w, req->deadline_ms);

    return fc_writer_finish(&w, written);
}


int
fc_response_encode(const fc_response_t *resp, uint8_t *buf, size_t cap,
    size_t *written)
{
    fc_writer_t  w;

    if (resp->nheaders > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    fc_writer_init(&w, buf, cap);

    fc_put_container(&w, 0x80, 4);

    fc_put_key(&w, "status");
    fc_put_uint(&w, resp->status);
    fc_put_key(&w, "headers");
    fc_put_headers(&w, resp->headers, resp->nheaders);
    fc_put_key(&w, "cold_start");
    fc_put_byte(&w, resp->cold_start ? 0xc3 : 0xc2);
    fc_put_key(&w, "instance");
    fc_put_str(&w, &resp->instance);

    return fc_writer_finish(&w, written);
}


int
fc_error_encode(const fc_error_t *err, uint8_t *buf, size_t cap,
    size_t *written)
{
    fc_writer_t  w;

    fc_writer_init(&w, buf, cap);

    fc_put_container(&w, 0x80, 3);

    fc_put_key(&w, "status");
    fc_put_uint(&w, err->status);
    fc_put_key(&w, "code");
    fc_put_str(&w, &err->code);
    fc_put_key(&w, "message");
    fc_put_str(&w, &err->message);

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


/* A key (a literal: sizeof counts its fixstr header byte for the NUL). */
#define fc_bound_key(key)  sizeof(key)


static size_t
fc_bound_strn(size_t acc, size_t key_bound, const fc_str_t *s)
{
    acc = fc_bound_add(acc, key_bound + FC_MP_STR_HDR);
    return fc_bound_add(acc, s->len);
}


#define fc_bound_str(acc, key, s)  fc_bound_strn(acc, fc_bound_key(key), s)


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

/* Containers open at once, at most (msgpack-c's own cap is 32,
 * MSGPACK_EMBED_STACK_SIZE; our maps need 3 levels). */
#define FC_MSGPACK_MAX_DEPTH  16


/*
 * The decoder reads the payload in place, in one pass: no msgpack-c zone (a
 * malloc and a free per message), no object tree.  The payload must be
 * exactly one well-formed object: a truncated one, trailing bytes, a
 * container deeper than FC_MSGPACK_MAX_DEPTH (walked without recursion) or
 * one whose element count cannot fit in the bytes left ("array32 of 4G
 * elements" in 5 bytes) is FC_EMSGPACK.  The types follow msgpack-c's
 * (msgpack_object_type): a signed integer >= 0 is a positive integer, str
 * and bin both count as strings.
 */
typedef enum {
    FC_MP_NIL = 0,
    FC_MP_BOOL,
    FC_MP_UINT,
    FC_MP_NINT,
    FC_MP_STR,          /* str or bin */
    FC_MP_ARRAY,
    FC_MP_MAP,
    FC_MP_OTHER         /* float, ext: skipped whole */
} fc_mp_type_e;

typedef struct {
    fc_mp_type_e  type;
    uint64_t      u;    /* uint, bool; count of array or map (pairs) */
    int64_t       i;    /* nint */
    const char   *s;    /* str */
    size_t        len;  /* str */
} fc_mp_obj_t;

typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
} fc_reader_t;


static uint64_t
fc_get_be(const uint8_t *p, size_t n)
{
    size_t    i;
    uint64_t  v = 0;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


/*
 * Reads one object's head; a string's body and a float's or ext's bytes are
 * consumed with it, a container's elements are not.  Bounds are checked
 * again even though the payload was checked: a reader never trusts that.
 */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int
fc_read(fc_reader_t *r, fc_mp_obj_t *o)
{
    uint8_t   b;
    size_t    n, body;
    uint64_t  v;

    if (r->p >= r->end) {
        return FC_EMSGPACK;
    }

    b = *r->p++;
    n = 0;          /* length field or value bytes after the type byte */
    body = 0;       /* bytes after those, consumed as well */

    if ((b & 0xe0) == 0xa0) {
        o->type = FC_MP_STR;                /* fixstr: most of a message */
        o->len = b & 0x1f;
        goto str;
    }

    if (b <= 0x7f) {
        o->type = FC_MP_UINT;
        o->u = b;
        return FC_OK;
    }

    if (b >= 0xe0) {
        o->type = FC_MP_NINT;
        o->i = (int8_t) b;
        return FC_OK;
    }

    if (b <= 0x8f) {
        o->type = FC_MP_MAP;
        o->u = b & 0x0f;
        goto container;
    }

    if (b <= 0x9f) {
        o->type = FC_MP_ARRAY;
        o->u = b & 0x0f;
        goto container;
    }

    if (b <= 0xbf) {
        o->type = FC_MP_STR;
        o->len = b & 0x1f;
        goto str;
    }

    switch (b) {
    case 0xc0:
        o->type = FC_MP_NIL;
        return FC_OK;
    case 0xc2:
    case 0xc3:
        o->type = FC_MP_BOOL;
        o->u = b & 1;
        return FC_OK;
    case 0xc4: case 0xd9: n = 1; break;
    case 0xc5: case 0xda: n = 2; break;
    case 0xc6: case 0xdb: n = 4; break;
    case 0xcc: case 0xd0: n = 1; break;
    case 0xcd: case 0xd1: n = 2; break;
    case 0xce: case 0xd2: n = 4; break;
    case 0xcf: case 0xd3: n = 8; break;
    case 0xdc: case 0xde: n = 2; break;
    case 0xdd: case 0xdf: n = 4; break;
    case 0xc7: n = 1; body = 1; break;      /* ext: length, type, data */
    case 0xc8: n = 2; body = 1; break;
    case 0xc9: n = 4; body = 1; break;
    case 0xca: body = 4; break;             /* float32 */
    case 0xcb: body = 8; break;
    case 0xd4: body = 2; break;             /* fixext */
    case 0xd5: body = 3; break;
    case 0xd6: body = 5; break;
    case 0xd7: body = 9; break;
    case 0xd8: body = 17; break;
    default:
        return FC_EMSGPACK;                 /* 0xc1 */
    }

    if ((size_t) (r->end - r->p) < n) {
        return FC_EMSGPACK;
    }

    v = fc_get_be(r->p, n);
    r->p += n;

    switch (b) {
    case 0xc4: case 0xc5: case 0xc6: case 0xd9: case 0xda: case 0xdb:
        o->type = FC_MP_STR;
        o->len = (size_t) v;
        goto str;

    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        o->type = FC_MP_UINT;
        o->u = v;
        return FC_OK;

    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        /* sign-extend the n-byte value */
        o->i = (int64_t) (v << (64 - 8 * n)) >> (64 - 8 * n);
        if (o->i >= 0) {
            o->type = FC_MP_UINT;
            o->u = (uint64_t) o->i;
        } else {
            o->type = FC_MP_NINT;
        }
        return FC_OK;

    case 0xdc: case 0xdd:
        o->type = FC_MP_ARRAY;
        o->u = v;
        goto container;

    case 0xde: case 0xdf:
        o->type = FC_MP_MAP;
        o->u = v;
        goto container;

    case 0xc7: case 0xc8: case 0xc9:
        body += (size_t) v;
        break;

    default:
        break;
    }

    if ((size_t) (r->end - r->p) < body) {
        return FC_EMSGPACK;
    }

    r->p += body;
    o->type = FC_MP_OTHER;

    return FC_OK;

str:

    if ((size_t) (r->end - r->p) < o->len) {
        return FC_EMSGPACK;
    }

    o->s = (const char *) r->p;
    r->p += o->len;

    return FC_OK;

container:

    /* every element takes at least one byte */
    if ((o->type == FC_MP_MAP ? 2 * o->u : o->u) > (uint64_t) (r->end - r->p)) {
        return FC_EMSGPACK;
    }

    return FC_OK;
}


/*
 * Skips one whole value (a container with all it holds) that sits inside
 * `depth` open containers; no recursion.
 */
static int
fc_skip(fc_reader_t *r, const fc_mp_obj_t *first, size_t depth)
{
    int          rc;
    size_t       open;
    uint64_t     n;
    uint64_t     left[FC_MSGPACK_MAX_DEPTH];    /* elements left per level */
    fc_mp_obj_t  o;

    open = 0;
    o = *first;

    for ( ;; ) {

        if (o.type == FC_MP_ARRAY || o.type == FC_MP_MAP) {
            if (depth + open >= FC_MSGPACK_MAX_DEPTH) {
                return FC_EMSGPACK;
            }

            n = (o.type == FC_MP_MAP) ? 2 * o.u : o.u;

            if (n > 0) {
                left[open++] = n;
                goto next;
            }
        }

        /* one object complete: close every container it completes */

        while (open > 0) {
            if (--left[open - 1] > 0) {
                break;
            }
            open--;
        }

        if (open == 0) {
            return FC_OK;
        }

    next:

        rc = fc_read(r, &o);
        if (rc != FC_OK) {
            return rc;
        }
    }
}


/* Starts reading the one map in payload: *pairs is its size. */
static int
fc_read_map(const uint8_t *payload, size_t len, fc_reader_t *r,
    uint64_t *pairs)
{
    int          rc;
    fc_mp_obj_t  o;

    if (len > FC_MAX_META_PAYLOAD) {
        return FC_ETOOBIG;
    }

    r->p = payload;
    r->end = payload + len;

    rc = fc_read(r, &o);
    if (rc != FC_OK) {
        return rc;
    }

    if (o.type != FC_MP_MAP) {
        return FC_ESCHEMA;
    }

    *pairs = o.u;

    return FC_OK;
}


/*
 * Returns the index of a string key in names[], or -1 (unknown: ignored).
 * The encoders write the keys in names[] order, so `hint` (the index after
 * the previous key) is tried first.
 */
static inline int
fc_key_index(const fc_mp_obj_t *key, const char *const *names,
    const uint8_t *lens, int n, int hint)
{
    int  i;

    if (key->type != FC_MP_STR) {
        return -1;
    }

    if (hint < n && lens[hint] == key->len
        && memcmp(names[hint], key->s, key->len) == 0)
    {
        return hint;
    }

    for (i = 0; i < n; i++) {
        if (lens[i] == key->len && memcmp(names[i], key->s, key->len) == 0) {
            return i;
        }
    }

    return -1;
}


static int
fc_get_str(const fc_mp_obj_t *o, fc_str_t *out)
{
    if (o->type != FC_MP_STR) {
        return FC_ESCHEMA;
    }

    out->data = o->s;
    out->len = o->len;

    return FC_OK;
}


static int
fc_get_uint(const fc_mp_obj_t *o, uint64_t max, uint64_t *out)
{
    if (o->type != FC_MP_UINT || o->u > max) {
        return FC_ESCHEMA;
    }

    *out = o->u;

    return FC_OK;
}


/* An HTTP status: three digits. */
static int
fc_get_status(const fc_mp_obj_t *o, uint32_t *out)
{
    uint64_t  v;

    if (fc_get_uint(o, 999, &v) != FC_OK || v < 100) {
        return FC_ESCHEMA;
    }

    *out = (uint32_t) v;

    return FC_OK;
}


/*
 * Reads a header array: [[name, value], ...], at most FC_MAX_HEADERS.
 * With out == NULL it only checks (and consumes) it; else it fills out[],
 * which has room for the count the check saw.
 */
static int
fc_read_headers(fc_reader_t *r, const fc_mp_obj_t *array, fc_header_t *out)
{
    int          rc;
    uint64_t     i;
    fc_mp_obj_t  pair, name, value;

    if (array->type != FC_MP_ARRAY) {
        return FC_ESCHEMA;
    }

    if (array->u > FC_MAX_HEADERS) {
        return FC_ETOOMANY;
    }

    for (i = 0; i < array->u; i++) {
        rc = fc_read(r, &pair);
        if (rc != FC_OK) {
            return rc;
        }

        if (pair.type != FC_MP_ARRAY || pair.u != 2) {
            return FC_ESCHEMA;
        }

        rc = fc_read(r, &name);
        if (rc != FC_OK) {
            return rc;
        }

        if (name.type != FC_MP_STR) {
            return FC_ESCHEMA;
        }

        rc = fc_read(r, &value);
        if (rc != FC_OK) {
            return rc;
        }

        if (value.type != FC_MP_STR) {
            return FC_ESCHEMA;
        }

        if (out) {
            out[i].name.data = name.s;
            out[i].name.len = name.len;
            out[i].value.data = value.s;
            out[i].value.len = value.len;
        }
    }

    return FC_OK;
}


/* Copies a header array checked by fc_read_headers(); the only allocation
 * a decoder makes, done last so a failed decode never leaves one behind. */
static int
fc_copy_headers(const fc_reader_t *at, const fc_mp_obj_t *array,
    fc_alloc_pt alloc, void *alloc_ctx, fc_header_t **headers,
    size_t *nheaders)
{
    fc_header_t  *h;
    fc_reader_t   r;

    *headers = NULL;
    *nheaders = 0;

    if (at == NULL || array->u == 0) {
        return FC_OK;
    }

    if (alloc == NULL) {
        return FC_ENOMEM;
    }

    h = alloc(alloc_ctx, array->u * sizeof(fc_header_t));
    if (h == NULL) {
        return FC_ENOMEM;
    }

    r = *at;
    (void) fc_read_headers(&r, array, h);

    *headers = h;
    *nheaders = array->u;

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
typedef int (*fc_field_pt)(int key, const fc_mp_obj_t *v, void *out);


/*
 * Walks a message's map: each known key at most once (a repeated one is
 * ambiguous), unknown keys skipped (forward compatible), every required key
 * present.  The value of key `headers_key` is checked in place; where it
 * starts is handed back, to be copied only once the whole message is known
 * to be good.
 */
static int
fc_decode_fields(fc_reader_t *r, uint64_t pairs, const char *const *names,
    const uint8_t *lens, int nkeys, unsigned required, int headers_key,
    fc_field_pt field, void *out, fc_reader_t *headers_at,
    fc_mp_obj_t *headers)
{
    int          rc, key, hint;
    uint64_t     i;
    unsigned     seen;
    fc_mp_obj_t  k, v;

    seen = 0;
    hint = 0;

    for (i = 0; i < pairs; i++) {
        rc = fc_read(r, &k);
        if (rc != FC_OK) {
            return rc;
        }

        key = fc_key_index(&k, names, lens, nkeys, hint);

        if (key < 0) {
            /* an unknown key (or a key that is a container) and its value */
            rc = fc_skip(r, &k, 1);
            if (rc == FC_OK) {
                rc = fc_read(r, &v);
            }
            if (rc == FC_OK) {
                rc = fc_skip(r, &v, 1);
            }
            if (rc != FC_OK) {
                return rc;
            }
            continue;
        }

        if (seen & (1u << key)) {
            return FC_ESCHEMA;
        }
        seen |= 1u << key;
        hint = key + 1;

        rc = fc_read(r, &v);
        if (rc != FC_OK) {
            return rc;
        }

        if (key == headers_key) {
            *headers_at = *r;
            *headers = v;
            rc = fc_read_headers(r, &v, NULL);

        } else {
            rc = field(key, &v, out);
            if (rc == FC_OK) {
                rc = fc_skip(r, &v, 1);     /* (a scalar: nothing to skip) */
            }
        }

        if (rc != FC_OK) {
            return rc;
        }
    }

    if (r->p != r->end) {
        return FC_EMSGPACK;             /* trailing bytes */
    }

    return (seen & required) == required ? FC_OK : FC_ESCHEMA;
}


static int
fc_request_field(int key, const fc_mp_obj_t *v, void *out)
{
    uint64_t       u;
    fc_request_t  *r = out;

    switch (key) {
    case FC_REQ_FUNCTION:
        return fc_get_str(v, &r->function);
    case FC_REQ_METHOD:
        return fc_get_str(v, &r->method);
    case FC_REQ_URI:
        return fc_get_str(v, &r->uri);
    case FC_REQ_VERSION:
        return fc_get_str(v, &r->version);
    case FC_REQ_REMOTE_ADDR:
        return fc_get_str(v, &r->remote_addr);
    case FC_REQ_REMOTE_PORT:
        if (fc_get_uint(v, 65535, &u) != FC_OK) {
            return FC_ESCHEMA;
        }
        r->remote_port = (uint32_t) u;
        return FC_OK;
    case FC_REQ_SCHEME:
        return fc_get_str(v, &r->scheme);
    case FC_REQ_HOST:
        return fc_get_str(v, &r->host);
    case FC_REQ_REQUEST_ID:
        return fc_get_str(v, &r->request_id);
    case FC_REQ_CONTENT_LENGTH:
        if (v->type == FC_MP_NINT && v->i == -1) {
            r->content_length = -1;
            return FC_OK;
        }
        if (fc_get_uint(v, INT64_MAX, &u) != FC_OK) {
            return FC_ESCHEMA;
        }
        r->content_length = (int64_t) u;
        return FC_OK;
    case FC_REQ_DEADLINE_MS:
        return fc_get_uint(v, UINT64_MAX, &r->deadline_ms);
    default:
        return FC_OK;
    }
}


int
fc_request_decode(const uint8_t *payload, size_t len, fc_request_t *req,
    fc_alloc_pt alloc, void *alloc_ctx)
{
    static const char *const  names[FC_REQ_NKEYS] = {
        "function", "method", "uri", "version", "headers", "remote_addr",
        "remote_port", "scheme", "host", "request_id", "content_length",
        "deadline_ms"
    };
    static const uint8_t      lens[FC_REQ_NKEYS] = {
        8, 6, 3, 7, 7, 11, 11, 6, 4, 10, 14, 11
    };
    static const unsigned     required = (1u << FC_REQ_FUNCTION)
                                         | (1u << FC_REQ_METHOD)
                                         | (1u << FC_REQ_URI);

    int           rc;
    uint64_t      pairs;
    fc_reader_t   r, headers_at;
    fc_mp_obj_t   headers;
    fc_request_t  q;

    rc = fc_read_map(payload, len, &r, &pairs);
    if (rc != FC_OK) {
        return rc;
    }

    memset(&q, 0, sizeof(fc_request_t));
    q.content_length = -1;
    headers.type = FC_MP_NIL;

    rc = fc_decode_fields(&r, pairs, names, lens, FC_REQ_NKEYS, required,
                          FC_REQ_HEADERS, fc_request_field, &q, &headers_at,
                          &headers);
    if (rc == FC_OK) {
        rc = fc_copy_headers(headers.type == FC_MP_ARRAY ? &headers_at : NULL,
                             &headers, alloc, alloc_ctx, &q.headers,
                             &q.nheaders);
    }

    if (rc == FC_OK) {
        *req = q;
    }

    return rc;
}


enum {
    FC_RESP_STATUS = 0,
    FC_RESP_HEADERS,
    FC_RESP_COLD_START,
    FC_RESP_INSTANCE,
    FC_RESP_NKEYS
};


static int
fc_response_field(int key, const fc_mp_obj_t *v, void *out)
{
    fc_response_t  *r = out;

    switch (key) {
    case FC_RESP_STATUS:
        return fc_get_status(v, &r->status);
    case FC_RESP_COLD_START:
        if (v->type != FC_MP_BOOL) {
            return FC_ESCHEMA;
        }
        r->cold_start = v->u ? 1 : 0;
        return FC_OK;
    case FC_RESP_INSTANCE:
        return fc_get_str(v, &r->instance);
    default:
        return FC_OK;
    }
}


int
fc_response_decode(const uint8_t *payload, size_t len,
    fc_response_t *resp, fc_alloc_pt alloc, void *alloc_ctx)
{
    static const char *const  names[FC_RESP_NKEYS] = {
        "status", "headers", "cold_start", "instance"
    };
    static const uint8_t      lens[FC_RESP_NKEYS] = { 6, 7, 10, 8 };

    int            rc;
    uint64_t       pairs;
    fc_reader_t    r, headers_at;
    fc_mp_obj_t    headers;
    fc_response_t  q;

    rc = fc_read_map(payload, len, &r, &pairs);
    if (rc != FC_OK) {
        return rc;
    }

    memset(&q, 0, sizeof(fc_response_t));
    headers.type = FC_MP_NIL;

    rc = fc_decode_fields(&r, pairs, names, lens, FC_RESP_NKEYS,
                          1u << FC_RESP_STATUS, FC_RESP_HEADERS,
                          fc_response_field, &q, &headers_at, &headers);
    if (rc == FC_OK) {
        rc = fc_copy_headers(headers.type == FC_MP_ARRAY ? &headers_at : NULL,
                             &headers, alloc, alloc_ctx, &q.headers,
                             &q.nheaders);
    }

    if (rc == FC_OK) {
        *resp = q;
    }

    return rc;
}


enum {
    FC_ERR_STATUS = 0,
    FC_ERR_CODE,
    FC_ERR_MESSAGE,
    FC_ERR_NKEYS
};


static int
fc_error_field(int key, const fc_mp_obj_t *v, void *out)
{
    fc_error_t  *e = out;

    switch (key) {
    case FC_ERR_STATUS:
        return fc_get_status(v, &e->status);
    case FC_ERR_CODE:
        return fc_get_str(v, &e->code);
    case FC_ERR_MESSAGE:
        return fc_get_str(v, &e->message);
    default:
        return FC_OK;
    }
}


int
fc_error_decode(const uint8_t *payload, size_t len, fc_error_t *err)
{
    static const char *const  names[FC_ERR_NKEYS] = {
        "status", "code", "message"
    };
    static const uint8_t      lens[FC_ERR_NKEYS] = { 6, 4, 7 };
    static const unsigned     required = (1u << FC_ERR_STATUS)
                                         | (1u << FC_ERR_CODE);

    int          rc;
    uint64_t     pairs;
    fc_error_t   e;
    fc_reader_t  r, headers_at;
    fc_mp_obj_t  headers;

    rc = fc_read_map(payload, len, &r, &pairs);
    if (rc != FC_OK) {
        return rc;
    }

    memset(&e, 0, sizeof(fc_error_t));

    rc = fc_decode_fields(&r, pairs, names, lens, FC_ERR_NKEYS, required,
                          -1, fc_error_field, &e, &headers_at, &headers);
    if (rc == FC_OK) {
        *err = e;
    }

    return rc;
}
