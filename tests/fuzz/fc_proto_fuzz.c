/*
 * libFuzzer target for the wire-protocol codec (DESIGN §3: "the decoder is
 * fuzzed").
 *
 * The first input byte seeds the slicing; the rest is a byte stream fed to
 * fc_parser_execute() in pseudo-random slices (1 byte up to everything),
 * with callbacks that sometimes pause.  Every complete REQUEST, RESPONSE or
 * ERROR payload goes through all three decoders, and whatever decodes is
 * re-encoded and decoded again, which must give the same message.  The raw
 * stream is also handed to the decoders directly so msgpack shapes are
 * reached without first forming a valid frame header.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fc_proto.h"

typedef struct {
    uint32_t   rng;
    uint8_t   *payload;     /* the current frame's payload, reassembled */
    size_t     have;
    uint8_t    type;
    void      *blocks[4];   /* the decoders' header arrays, freed per call */
    size_t     nblocks;
} fuzz_ctx_t;


static uint32_t
fuzz_next(fuzz_ctx_t *c)
{
    /* xorshift32: deterministic per input, so crashes reproduce */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 17;
    c->rng ^= c->rng << 5;
    return c->rng;
}


static void *
fuzz_alloc(void *ctx, size_t size)
{
    fuzz_ctx_t  *c = ctx;
    void        *p;

    if (c->nblocks == sizeof(c->blocks) / sizeof(c->blocks[0])) {
        __builtin_trap();       /* a decoder allocating more than once */
    }

    p = malloc(size);
    if (p != NULL) {
        c->blocks[c->nblocks++] = p;
    }
    return p;
}


static void
fuzz_free_blocks(fuzz_ctx_t *c)
{
    while (c->nblocks > 0) {
        free(c->blocks[--c->nblocks]);
    }
}


static int
same_str(fc_str_t a, fc_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}


static int
same_headers(const fc_header_t *a, size_t na, const fc_header_t *b, size_t nb)
{
    size_t  i;

    if (na != nb) {
        return 0;
    }
    for (i = 0; i < na; i++) {
        if (!same_str(a[i].name, b[i].name) || !same_str(a[i].value, b[i].value)) {
            return 0;
        }
    }
    return 1;
}


static void
check_request(fuzz_ctx_t *c, const uint8_t *data, size_t len)
{
    int           rc;
    size_t        cap, n;
    uint8_t      *buf;
    fc_request_t  a, b;

    rc = fc_request_decode(data, len, &a, fuzz_alloc, c);
    if (rc != FC_OK) {
        if (c->nblocks != 0) {
            __builtin_trap();   /* a failed decode must not allocate */
        }
        return;
    }

    cap = fc_request_size_bound(&a);
    buf = malloc(cap);
    if (buf == NULL) {
        fuzz_free_blocks(c);
        return;
    }

    rc = fc_request_encode(&a, buf, cap, &n);
    if (rc == FC_OK) {
        if (n > cap || fc_request_decode(buf, n, &b, fuzz_alloc, c) != FC_OK) {
            __builtin_trap();
        }
        if (!same_str(a.function, b.function) || !same_str(a.method, b.method)
            || !same_str(a.uri, b.uri) || !same_str(a.version, b.version)
            || !same_headers(a.headers, a.nheaders, b.headers, b.nheaders)
            || !same_str(a.remote_addr, b.remote_addr)
            || a.remote_port != b.remote_port
            || !same_str(a.scheme, b.scheme) || !same_str(a.host, b.host)
            || !same_str(a.request_id, b.request_id)
            || a.content_length != b.content_length
            || a.deadline_ms != b.deadline_ms)
        {
            __builtin_trap();
        }

    } else if (rc != FC_ETOOBIG) {
        __builtin_trap();       /* the bound was not enough */
    }

    free(buf);
    fuzz_free_blocks(c);
}


static void
check_response(fuzz_ctx_t *c, const uint8_t *data, size_t len)
{
    int            rc;
    size_t         cap, n;
    uint8_t       *buf;
    fc_response_t  a, b;

    rc = fc_response_decode(data, len, &a, fuzz_alloc, c);
    if (rc != FC_OK) {
        if (c->nblocks != 0) {
            __builtin_trap();
        }
        return;
    }

    cap = fc_response_size_bound(&a);
    buf = malloc(cap);
    if (buf == NULL) {
        fuzz_free_blocks(c);
        return;
    }

    rc = fc_response_encode(&a, buf, cap, &n);
    if (rc == FC_OK) {
        if (n > cap || fc_response_decode(buf, n, &b, fuzz_alloc, c) != FC_OK) {
            __builtin_trap();
        }
        if (a.status != b.status || a.cold_start != b.cold_start
            || !same_headers(a.headers, a.nheaders, b.headers, b.nheaders)
            || !same_str(a.instance, b.instance))
        {
            __builtin_trap();
        }

    } else if (rc != FC_ETOOBIG) {
        __builtin_trap();
    }

    free(buf);
    fuzz_free_blocks(c);
}


static void
check_error(const uint8_t *data, size_t len)
{
    int         rc;
    size_t      cap, n;
    uint8_t    *buf;
    fc_error_t  a, b;

    if (fc_error_decode(data, len, &a) != FC_OK) {
        return;
    }

    cap = fc_error_size_bound(&a);
    buf = malloc(cap);
    if (buf == NULL) {
        return;
    }

    rc = fc_error_encode(&a, buf, cap, &n);
    if (rc == FC_OK) {
        if (n > cap || fc_error_decode(buf, n, &b) != FC_OK
            || a.status != b.status || !same_str(a.code, b.code)
            || !same_str(a.message, b.message))
        {
            __builtin_trap();
        }

    } else if (rc != FC_ETOOBIG) {
        __builtin_trap();
    }

    free(buf);
}


static void
check_all_decoders(fuzz_ctx_t *c, const uint8_t *data, size_t len)
{
    check_request(c, data, len);
    check_response(c, data, len);
    check_error(data, len);
}


static int
maybe_pause(fuzz_ctx_t *c)
{
    return (fuzz_next(c) & 7) == 0;
}


static int
on_header(fc_parser_t *p, const fc_frame_header_t *hdr)
{
    fuzz_ctx_t  *c = p->data;

    if (hdr->version != FC_PROTO_VERSION || hdr->type < FC_FRAME_REQUEST
        || hdr->type > FC_FRAME_ERROR
        || hdr->length > FC_MAX_FRAME_PAYLOAD)
    {
        __builtin_trap();       /* the parser let a bad header through */
    }

    free(c->payload);
    c->payload = malloc(hdr->length ? hdr->length : 1);
    if (c->payload == NULL) {
        abort();
    }
    c->have = 0;
    c->type = hdr->type;

    return maybe_pause(c);
}


static int
on_payload(fc_parser_t *p, const uint8_t *data, size_t len)
{
    fuzz_ctx_t  *c = p->data;

    if (c->payload == NULL || len == 0 || len > p->hdr.length - c->have) {
        __builtin_trap();       /* more payload than the header promised */
    }

    memcpy(c->payload + c->have, data, len);
    c->have += len;

    return maybe_pause(c);
}


static int
on_frame_end(fc_parser_t *p)
{
    fuzz_ctx_t  *c = p->data;

    if (c->payload == NULL || c->have != p->hdr.length) {
        __builtin_trap();
    }

    if (c->type != FC_FRAME_DATA) {
        check_all_decoders(c, c->payload, c->have);
    }

    free(c->payload);
    c->payload = NULL;

    return maybe_pause(c);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                       pos, n, used;
    fuzz_ctx_t                   c;
    fc_parser_t                  p;
    static const fc_parser_callbacks_t  cb = {
        on_header, on_payload, on_frame_end
    };

    if (size == 0) {
        return 0;
    }

    memset(&c, 0, sizeof(c));
    c.rng = 0x9e3779b9u ^ data[0];
    data++;
    size--;

    fc_parser_init(&p, &c);
    pos = 0;

    while (pos < size && p.error == 0) {
        n = size - pos;
        switch (fuzz_next(&c) & 3) {
        case 0:
            n = 1;
            break;
        case 1:
            n = 1 + fuzz_next(&c) % n;
            break;
        default:
            break;              /* the rest in one go */
        }

        used = fc_parser_execute(&p, &cb, data + pos, n);
        if (used > n || (!p.paused && p.error == 0 && used != n)) {
            __builtin_trap();   /* unpaused parser must take the whole slice */
        }
        pos += used;
    }

    /* a pause on the last byte may still owe a frame end; every resume
     * makes progress, so this ends */
    while (p.paused && p.error == 0) {
        fc_parser_execute(&p, &cb, NULL, 0);
    }

    free(c.payload);

    check_all_decoders(&c, data, size);

    return 0;
}
