/*
 * Writes the fuzzer's seed corpus: real frames and frame sequences made by
 * the codec itself.  Each file starts with the one seed byte the fuzz target
 * uses to pick its slicing, then the stream.
 *
 *   gen_corpus OUTDIR
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fc_proto.h"

#define S(lit)  { lit, sizeof(lit) - 1 }

typedef struct {
    uint8_t  data[4096];
    size_t   len;
} stream_t;


static void
add_frame(stream_t *s, uint8_t type, uint16_t flags, const uint8_t *payload,
    size_t len)
{
    if (s->len + FC_FRAME_HEADER_SIZE + len > sizeof(s->data)) {
        fprintf(stderr, "gen_corpus: stream buffer too small\n");
        exit(1);
    }
    fc_frame_header_encode(s->data + s->len, type, flags, (uint32_t) len);
    s->len += FC_FRAME_HEADER_SIZE;
    if (len) {
        memcpy(s->data + s->len, payload, len);
    }
    s->len += len;
}


static void
check(int rc, const char *what)
{
    if (rc != FC_OK) {
        fprintf(stderr, "gen_corpus: %s: %s\n", what, fc_strerror(rc));
        exit(1);
    }
}


static void
write_seed(const char *dir, const char *name, uint8_t seed, const stream_t *s)
{
    char   path[4096];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(&seed, 1, 1, f) != 1
        || fwrite(s->data, 1, s->len, f) != s->len || fclose(f) != 0)
    {
        perror(path);
        exit(1);
    }
}


int
main(int argc, char **argv)
{
    size_t         req_len, resp_len, err_len, min_len;
    uint8_t        req[1024], resp[1024], err[1024], min[256];
    stream_t       s;
    fc_request_t   r, rmin;
    fc_response_t  p;
    fc_error_t     e;
    fc_header_t    hdrs[] = {
        { S("Host"), S("example.com") },
        { S("Content-Type"), S("application/json") },
        { S("X-Dup"), S("a") },
        { S("X-Dup"), S("b") },
    };
    fc_header_t    resp_hdrs[] = {
        { S("Content-Type"), S("text/plain") },
        { S("Set-Cookie"), S("a=1") },
    };

    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR\n");
        return 2;
    }

    memset(&r, 0, sizeof(r));
    r.function = (fc_str_t) S("hello");
    r.method = (fc_str_t) S("POST");
    r.uri = (fc_str_t) S("/invoke?x=1&y=%20");
    r.version = (fc_str_t) S("HTTP/1.1");
    r.headers = hdrs;
    r.nheaders = sizeof(hdrs) / sizeof(hdrs[0]);
    r.remote_addr = (fc_str_t) S("127.0.0.1");
    r.remote_port = 54321;
    r.scheme = (fc_str_t) S("http");
    r.host = (fc_str_t) S("example.com");
    r.request_id = (fc_str_t) S("5f2b6c0e9d3a4b1c8e7f6a5b4c3d2e1f");
    r.content_length = 11;
    r.deadline_ms = 30000;
    check(fc_request_encode(&r, req, sizeof(req), &req_len), "request");

    memset(&rmin, 0, sizeof(rmin));
    rmin.function = (fc_str_t) S("f");
    rmin.method = (fc_str_t) S("GET");
    rmin.uri = (fc_str_t) S("/");
    rmin.content_length = -1;
    check(fc_request_encode(&rmin, min, sizeof(min), &min_len), "request");

    memset(&p, 0, sizeof(p));
    p.status = 200;
    p.headers = resp_hdrs;
    p.nheaders = sizeof(resp_hdrs) / sizeof(resp_hdrs[0]);
    p.cold_start = 1;
    p.instance = (fc_str_t) S("hello-0");
    check(fc_response_encode(&p, resp, sizeof(resp), &resp_len), "response");

    memset(&e, 0, sizeof(e));
    e.status = 503;
    e.code = (fc_str_t) S("QueueFull");
    e.message = (fc_str_t) S("too many requests queued for hello");
    check(fc_error_encode(&e, err, sizeof(err), &err_len), "error");

    /* single frames */
    s.len = 0;
    add_frame(&s, FC_FRAME_REQUEST, 0, req, req_len);
    write_seed(argv[1], "request", 0, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_REQUEST, 0, min, min_len);
    write_seed(argv[1], "request-minimal", 1, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_RESPONSE, 0, resp, resp_len);
    write_seed(argv[1], "response", 2, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_ERROR, 0, err, err_len);
    write_seed(argv[1], "error", 3, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_DATA, FC_FLAG_END_STREAM, NULL, 0);
    write_seed(argv[1], "data-empty-end", 4, &s);

    /* whole exchanges, both directions */
    s.len = 0;
    add_frame(&s, FC_FRAME_REQUEST, 0, req, req_len);
    add_frame(&s, FC_FRAME_DATA, 0, (const uint8_t *) "hello", 5);
    add_frame(&s, FC_FRAME_DATA, FC_FLAG_END_STREAM,
              (const uint8_t *) " world", 6);
    write_seed(argv[1], "exchange-request", 5, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_RESPONSE, 0, resp, resp_len);
    add_frame(&s, FC_FRAME_DATA, 0, (const uint8_t *) "hi\n", 3);
    add_frame(&s, FC_FRAME_DATA, FC_FLAG_END_STREAM, NULL, 0);
    write_seed(argv[1], "exchange-response", 6, &s);

    s.len = 0;
    add_frame(&s, FC_FRAME_RESPONSE, 0, resp, resp_len);
    add_frame(&s, FC_FRAME_DATA, 0, (const uint8_t *) "partial", 7);
    add_frame(&s, FC_FRAME_ERROR, 0, err, err_len);
    write_seed(argv[1], "exchange-aborted", 7, &s);

    /* a bare msgpack payload, for the decoders fed the raw stream */
    memcpy(s.data, req, req_len);
    s.len = req_len;
    write_seed(argv[1], "raw-request-payload", 8, &s);

    return 0;
}
