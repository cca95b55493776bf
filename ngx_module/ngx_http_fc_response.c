
/*
 * The runner's answer: process_header parses RESPONSE or ERROR from
 * u->buffer; the input filters (unbuffered, and the event pipe's with
 * fc_buffering on) walk the DATA frames that follow and hand out buffers
 * pointing into the raw ones.
 */


#include "ngx_http_fc_module.h"
#include "fc_errors.h"


static ngx_int_t ngx_http_fc_process_response(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, u_char *payload, size_t len);
static ngx_int_t ngx_http_fc_process_error(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, u_char *payload, size_t len);
static ngx_int_t ngx_http_fc_answer_error(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, ngx_uint_t status, ngx_str_t *code,
    ngx_str_t *message);
static ngx_int_t ngx_http_fc_bad_response(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, ngx_str_t *message);
static ngx_int_t ngx_http_fc_add_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_fc_discard_body(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx);
static off_t ngx_http_fc_pipe_length(ngx_http_fc_ctx_t *ctx);
static int ngx_http_fc_on_header(fc_parser_t *p, const fc_frame_header_t *hdr);
static int ngx_http_fc_on_payload(fc_parser_t *p, const uint8_t *data,
    size_t len);
static int ngx_http_fc_on_frame_end(fc_parser_t *p);
static int ngx_http_fc_pipe_payload(ngx_http_fc_ctx_t *ctx,
    const uint8_t *data, size_t len);
static ngx_uint_t ngx_http_fc_keepalive_ok(ngx_http_fc_ctx_t *ctx,
    ngx_buf_t *b);
static void *ngx_http_fc_alloc(void *pool, size_t size);


static fc_parser_callbacks_t  ngx_http_fc_parser_callbacks = {
    ngx_http_fc_on_header,
    ngx_http_fc_on_payload,
    ngx_http_fc_on_frame_end
};


ngx_int_t
ngx_http_fc_process_header(ngx_http_request_t *r)
{
    u_char               *payload;
    u_char                text[128];
    size_t                size;
    ngx_int_t             rc;
    ngx_str_t             message;
    ngx_buf_t            *b;
    fc_frame_header_t     hdr;
    ngx_http_upstream_t  *u;
    ngx_http_fc_ctx_t    *ctx;

    u = r->upstream;
    b = &u->buffer;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->state == ngx_http_fc_st_discard) {
        return ngx_http_fc_discard_body(r, ctx);
    }

    if (b->last - b->pos < FC_FRAME_HEADER_SIZE) {
        return NGX_AGAIN;
    }

    rc = fc_frame_header_decode(b->pos, &hdr);

    if (rc != FC_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid frame header: %s",
                      fc_strerror((int) rc));
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if (hdr.type != FC_FRAME_RESPONSE && hdr.type != FC_FRAME_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent unexpected frame type 0x%02xd "
                      "before RESPONSE", (ngx_uint_t) hdr.type);
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    size = FC_FRAME_HEADER_SIZE + (size_t) hdr.length;

    if (size > (size_t) (b->end - b->pos)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent too big %s frame: %uz bytes do not fit "
                      "in fc_buffer_size %uz",
                      hdr.type == FC_FRAME_RESPONSE ? "RESPONSE" : "ERROR",
                      size, (size_t) (b->end - b->start));

        message.len = ngx_sprintf(text, "the response headers are too large "
                                  "(over fc_buffer_size, %uz bytes)",
                                  (size_t) (b->end - b->start))
                      - text;
        message.data = text;

        return ngx_http_fc_bad_response(r, ctx, &message);
    }

    if ((size_t) (b->last - b->pos) < size) {
        return NGX_AGAIN;
    }

    payload = b->pos + FC_FRAME_HEADER_SIZE;

    if (hdr.type == FC_FRAME_ERROR) {
        rc = ngx_http_fc_process_error(r, ctx, payload, hdr.length);
        if (rc != NGX_OK) {
            return rc;
        }

        b->pos += size;

        /* the JSON body is ours: no need for the pipe */
        u->buffering = 0;

        if (!(hdr.flags & FC_FLAG_END_STREAM)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "runner sent ERROR without END_STREAM");
            return NGX_OK;
        }

        ctx->done = 1;
        u->keepalive = ngx_http_fc_keepalive_ok(ctx, b);

        return NGX_OK;
    }

    rc = ngx_http_fc_process_response(r, ctx, payload, hdr.length);
    if (rc != NGX_OK || ctx->error_body) {
        /* an error, or the module's own answer (BadResponse) */
        return rc;
    }

    b->pos += size;

    fc_parser_init(&ctx->parser, ctx);

    if (hdr.flags & FC_FLAG_END_STREAM) {

        /* a RESPONSE that ends the stream has no body */

        ctx->done = 1;
        u->buffering = 0;
        u->headers_in.content_length_n = 0;
        u->keepalive = ngx_http_fc_keepalive_ok(ctx, b);

        return NGX_OK;
    }

    if (u->headers_in.status_n == NGX_HTTP_NO_CONTENT
        || u->headers_in.status_n == NGX_HTTP_NOT_MODIFIED
        || r->method == NGX_HTTP_HEAD)
    {
        /*
         * nginx sends such a response as soon as the header is here, so
         * the empty body the runner still sends must be read now for the
         * connection to stay reusable
         */

        ctx->state = ngx_http_fc_st_discard;
        u->buffering = 0;

        return ngx_http_fc_discard_body(r, ctx);
    }

    ctx->state = ngx_http_fc_st_body;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_process_response(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    u_char *payload, size_t len)
{
    u_char                         *p;
    size_t                          i;
    ngx_int_t                       rc;
    ngx_str_t                       name, value, message;
    fc_response_t                   resp;
    ngx_http_upstream_t            *u;
    ngx_http_fc_main_conf_t        *fmcf;

    u = r->upstream;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fc_module);

    rc = fc_response_decode_in_zone(fmcf->zone, payload, len, &resp,
                                    ngx_http_fc_alloc, r->pool);

    if (rc != FC_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid RESPONSE: %s",
                      fc_strerror((int) rc));
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if ((resp.status < 200
         && !(resp.status == NGX_HTTP_SWITCHING_PROTOCOLS && ctx->upgrade))
        || resp.status > 599)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid status %uD in RESPONSE",
                      resp.status);

        ngx_str_set(&message, "the function answered an invalid status");
        return ngx_http_fc_bad_response(r, ctx, &message);
    }

    for (i = 0; i < resp.nheaders; i++) {

        name.data = (u_char *) resp.headers[i].name.data;
        name.len = resp.headers[i].name.len;
        value.data = (u_char *) resp.headers[i].value.data;
        value.len = resp.headers[i].value.len;

        rc = ngx_http_fc_add_header(r, &name, &value);

        if (rc == NGX_OK) {
            continue;
        }

        if (rc != NGX_DECLINED) {
            return rc;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid header \"%*s: %*s\" in RESPONSE",
                      ngx_min(name.len, 256), name.data,
                      ngx_min(value.len, 256), value.data);
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    u->headers_in.status_n = resp.status;

    if (u->state && u->state->status == 0) {
        u->state->status = resp.status;
    }

    if (u->headers_in.content_length == NULL) {
        u->headers_in.content_length_n = -1;
    }

    if (resp.instance.len) {
        p = ngx_pnalloc(r->pool, resp.instance.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, resp.instance.data, resp.instance.len);

        ctx->instance.data = p;
        ctx->instance.len = resp.instance.len;
    }

    ctx->response = 1;
    ctx->cold_start = resp.cold_start ? 1 : 0;

    if (resp.status == NGX_HTTP_SWITCHING_PROTOCOLS) {

        /* what follows is the tunnel's, as it comes (ngx_http_fc_tunnel.c) */

        ctx->tunnel = 1;
        u->buffering = 0;
        u->keepalive = 0;
        u->headers_in.content_length_n = -1;
        ngx_str_set(&u->headers_in.status_line, "101 Switching Protocols");
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fc response: %ui, instance \"%V\", cold start %d",
                   u->headers_in.status_n, &ctx->instance, ctx->cold_start);

    return NGX_OK;
}


/*
 * An ERROR before RESPONSE is the answer: its status, a JSON body and the
 * error code in x-fc-error-type (DESIGN §7).
 */

static ngx_int_t
ngx_http_fc_process_error(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    u_char *payload, size_t len)
{
    size_t                size;
    ngx_int_t             rc;
    ngx_str_t             code, message, logged;
    fc_error_t            err;
    ngx_uint_t            level;

    rc = fc_error_decode(payload, len, &err);

    if (rc != FC_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid ERROR: %s", fc_strerror((int) rc));
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    code.data = (u_char *) err.code.data;
    code.len = err.code.len;
    message.data = (u_char *) err.message.data;
    message.len = err.message.len;

    if (err.status < 400 || err.status > 599) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent ERROR with invalid status %uD",
                      err.status);
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    for (size = 0; size < code.len; size++) {
        if (code.data[size] <= ' ' || code.data[size] >= 0x7f) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "runner sent ERROR with invalid code \"%*s\"",
                          ngx_min(code.len, 256), code.data);
            return NGX_HTTP_UPSTREAM_INVALID_HEADER;
        }
    }

    level = (err.status >= 500) ? NGX_LOG_ERR : NGX_LOG_INFO;

    if (ngx_http_fc_escape(r->pool, &message, NGX_HTTP_FC_MAX_LOGGED_MESSAGE,
                           &logged)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_error(level, r->connection->log, 0,
                  "runner answered %uD %V: \"%V\"",
                  err.status, &code, &logged);

    return ngx_http_fc_answer_error(r, ctx, err.status, &code, &message);
}


/*
 * The gateway's own answer, instead of the runner's response: its status,
 * the JSON body {"errorCode","errorMessage","requestId"} and the code in
 * x-fc-error-type (DESIGN §7), handed out by the input filter.
 */

static ngx_int_t
ngx_http_fc_answer_error(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *message)
{
    ngx_int_t             rc;
    ngx_str_t             name, value;
    ngx_buf_t            *b;
    ngx_http_upstream_t  *u;

    static ngx_str_t  content_type = ngx_string("Content-Type");
    static ngx_str_t  json = ngx_string("application/json");
    static ngx_str_t  error_type = ngx_string(FC_ERROR_TYPE_HEADER);

    u = r->upstream;

    b = ngx_http_fc_error_body(r, &ctx->request_id, code, message);
    if (b == NULL) {
        return NGX_ERROR;
    }

    ctx->error_body = b;

    /* the code outlives u->buffer in a header */

    value.data = ngx_pnalloc(r->pool, code->len);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value.data, code->data, code->len);
    value.len = code->len;

    name = error_type;

    rc = ngx_http_fc_add_header(r, &name, &value);
    if (rc != NGX_OK) {
        return rc;
    }

    name = content_type;
    value = json;

    rc = ngx_http_fc_add_header(r, &name, &value);
    if (rc != NGX_OK) {
        return rc;
    }

    u->headers_in.status_n = status;
    u->headers_in.content_length_n = b->last - b->pos;

    if (u->state && u->state->status == 0) {
        u->state->status = status;
    }

    return NGX_OK;
}


/*
 * A RESPONSE the module cannot pass on (larger than fc_buffer_size, or an
 * invalid status) is answered 502 BadResponse, the shape the runner gives
 * for its own limit.  The rest of the runner's response is not read: the
 * connection is closed, not reused.
 */

static ngx_int_t
ngx_http_fc_bad_response(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    ngx_str_t *message)
{
    ngx_http_upstream_t  *u;

    static ngx_str_t  code = ngx_string(FC_ERR_BAD_RESPONSE);

    u = r->upstream;

    u->buffer.pos = u->buffer.last;
    u->keepalive = 0;
    u->buffering = 0;

    ctx->done = 1;

    return ngx_http_fc_answer_error(r, ctx, NGX_HTTP_BAD_GATEWAY, &code,
                                    message);
}


/* {"errorCode":"...","errorMessage":"...","requestId":"..."} */

ngx_buf_t *
ngx_http_fc_error_body(ngx_http_request_t *r, ngx_str_t *request_id,
    ngx_str_t *code, ngx_str_t *message)
{
    u_char     *p;
    size_t      size;
    ngx_buf_t  *b;

    size = sizeof("{\"errorCode\":\"\",\"errorMessage\":\"\","
                  "\"requestId\":\"\"}\n") - 1
           + code->len + ngx_escape_json(NULL, code->data, code->len)
           + message->len
           + ngx_escape_json(NULL, message->data, message->len)
           + request_id->len
           + ngx_escape_json(NULL, request_id->data, request_id->len);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;
    p = ngx_cpymem(p, "{\"errorCode\":\"", sizeof("{\"errorCode\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, code->data, code->len);
    p = ngx_cpymem(p, "\",\"errorMessage\":\"",
                   sizeof("\",\"errorMessage\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, message->data, message->len);
    p = ngx_cpymem(p, "\",\"requestId\":\"", sizeof("\",\"requestId\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, request_id->data, request_id->len);
    p = ngx_cpymem(p, "\"}\n", sizeof("\"}\n") - 1);
    b->last = p;

    return b;
}


/*
 * A byte of a header name as nginx keeps it in lowcase_key, or 0 for one a
 * name cannot hold (controls, space, ':', DEL): the check and the lowercase
 * are one lookup, as in nginx's own header parser.
 */

static const u_char  ngx_http_fc_name_lowcase[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
    0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x00, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
    0x40, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
    0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
    0x78, 0x79, 0x7a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
    0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
    0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x00,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
    0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
    0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
    0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
    0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
    0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff
};

/* a value holds any byte but NUL, CR and LF */
#define ngx_http_fc_bad_value_char(c)                                        \
    ((c) <= CR && ((c) == '\0' || (c) == CR || (c) == LF))

/* eight bytes at a time: whether any of them is 0, or equal to c */
#define ngx_http_fc_ones        0x0101010101010101ULL
#define ngx_http_fc_highs       0x8080808080808080ULL
#define ngx_http_fc_has_zero(v)                                              \
    (((v) - ngx_http_fc_ones) & ~(v) & ngx_http_fc_highs)
#define ngx_http_fc_has_byte(v, c)                                           \
    ngx_http_fc_has_zero((v) ^ (ngx_http_fc_ones * (c)))
#define ngx_http_fc_bad_value_word(v)                                        \
    (ngx_http_fc_has_zero(v) | ngx_http_fc_has_byte(v, CR)                   \
     | ngx_http_fc_has_byte(v, LF))


/*
 * Whether a value has no NUL, CR or LF: eight bytes a step (the last step
 * overlapping the one before), a byte a step only below eight bytes.
 */

static ngx_uint_t
ngx_http_fc_valid_value(u_char *p, size_t len)
{
    uint64_t   v;
    u_char    *last;

    if (len < 8) {
        for (last = p + len; p < last; p++) {
            if (ngx_http_fc_bad_value_char(*p)) {
                return 0;
            }
        }

        return 1;
    }

    last = p + len - 8;

    for ( /* void */ ; p < last; p += 8) {
        ngx_memcpy(&v, p, 8);

        if (ngx_http_fc_bad_value_word(v)) {
            return 0;
        }
    }

    ngx_memcpy(&v, last, 8);

    return ngx_http_fc_bad_value_word(v) ? 0 : 1;
}


/*
 * The response header names looked up once, at configuration time: those
 * web frameworks and servers send with nearly every response, and those
 * nginx's upstream handles itself (ngx_http_upstream_headers_in).
 */

static ngx_str_t  ngx_http_fc_known_header_names[] = {
    ngx_string("Content-Type"),
    ngx_string("Content-Length"),
    ngx_string("Date"),
    ngx_string("Server"),
    ngx_string("Connection"),
    ngx_string("Keep-Alive"),
    ngx_string("Transfer-Encoding"),
    ngx_string("Cache-Control"),
    ngx_string("Expires"),
    ngx_string("Pragma"),
    ngx_string("Set-Cookie"),
    ngx_string("Location"),
    ngx_string("Refresh"),
    ngx_string("ETag"),
    ngx_string("Last-Modified"),
    ngx_string("Vary"),
    ngx_string("Link"),
    ngx_string("Content-Encoding"),
    ngx_string("Content-Language"),
    ngx_string("Content-Disposition"),
    ngx_string("Content-Range"),
    ngx_string("Accept-Ranges"),
    ngx_string("WWW-Authenticate"),
    ngx_string("X-Powered-By"),
    ngx_string("X-Content-Type-Options"),
    ngx_string("X-Frame-Options"),
    ngx_string("Strict-Transport-Security"),
    ngx_string("Access-Control-Allow-Origin"),
    ngx_null_string
};


ngx_int_t
ngx_http_fc_known_headers_init(ngx_conf_t *cf, ngx_http_fc_main_conf_t *fmcf)
{
    size_t                          i, len;
    ngx_str_t                      *name;
    ngx_http_fc_known_header_t     *k, **kp;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    for (name = ngx_http_fc_known_header_names; name->len; name++) {

        len = name->len;

        if (len < NGX_HTTP_FC_KNOWN_HEADER_MIN_LEN
            || len > NGX_HTTP_FC_KNOWN_HEADER_MAX_LEN)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "fc: known header name \"%V\" is not "
                               "%d to %d bytes long", name,
                               NGX_HTTP_FC_KNOWN_HEADER_MIN_LEN,
                               NGX_HTTP_FC_KNOWN_HEADER_MAX_LEN);
            return NGX_ERROR;
        }

        k = ngx_palloc(cf->pool, sizeof(ngx_http_fc_known_header_t));
        if (k == NULL) {
            return NGX_ERROR;
        }

        k->lowcase_key = ngx_pnalloc(cf->pool, 2 * (len + 1));
        if (k->lowcase_key == NULL) {
            return NGX_ERROR;
        }

        k->case_bits = k->lowcase_key + len + 1;

        for (i = 0; i < len; i++) {
            k->lowcase_key[i] = ngx_tolower(name->data[i]);
            k->case_bits[i] = (k->lowcase_key[i] >= 'a'
                               && k->lowcase_key[i] <= 'z')
                              ? 0x20 : 0;
        }

        k->lowcase_key[len] = '\0';
        k->case_bits[len] = 0;

        k->hash = ngx_hash_key(k->lowcase_key, len);
        k->handler = ngx_hash_find(&umcf->headers_in_hash, k->hash,
                                   k->lowcase_key, len);

        /* kept in the order of the list: the commonest first */

        for (kp = &fmcf->known_headers[len]; *kp; kp = &(*kp)->next) {
            /* void */
        }

        k->next = NULL;
        *kp = k;
    }

    return NGX_OK;
}


/*
 * Whether a name is the known one, in any case: a byte ORed with 0x20
 * where the known name has a letter (only the two cases of that letter
 * give it) and compared as it is elsewhere, four or eight bytes a step,
 * the last step overlapping the one before.
 */

static ngx_inline ngx_uint_t
ngx_http_fc_known_word8(u_char *p, ngx_http_fc_known_header_t *k, size_t i)
{
    uint64_t  v, bits, low;

    ngx_memcpy(&v, p + i, 8);
    ngx_memcpy(&bits, k->case_bits + i, 8);
    ngx_memcpy(&low, k->lowcase_key + i, 8);

    return (v | bits) == low;
}


static ngx_inline ngx_uint_t
ngx_http_fc_known_word4(u_char *p, ngx_http_fc_known_header_t *k, size_t i)
{
    uint32_t  v, bits, low;

    ngx_memcpy(&v, p + i, 4);
    ngx_memcpy(&bits, k->case_bits + i, 4);
    ngx_memcpy(&low, k->lowcase_key + i, 4);

    return (v | bits) == low;
}


static ngx_uint_t
ngx_http_fc_is_known(ngx_http_fc_known_header_t *k, u_char *p, size_t len)
{
    size_t  i;

    if (len < 8) {
        return ngx_http_fc_known_word4(p, k, 0)
               && ngx_http_fc_known_word4(p, k, len - 4);
    }

    for (i = 0; i < len - 8; i += 8) {
        if (!ngx_http_fc_known_word8(p, k, i)) {
            return 0;
        }
    }

    return ngx_http_fc_known_word8(p, k, len - 8);
}


/*
 * A response header line: copied out of u->buffer (NUL-terminated, as
 * nginx's header handlers expect) and handed to the upstream's header
 * handlers, so Content-Length, Location, Set-Cookie, fc_hide_header and
 * fc_pass_header work as with proxy_pass.  A known name keeps its lowcase
 * key, hash and handler from the table; another is checked, lowercased and
 * hashed in one pass and its handler looked up.  NGX_DECLINED: a name or
 * value HTTP cannot carry.
 */

static ngx_int_t
ngx_http_fc_add_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char                         *src, *dst, *low, *last, c;
    ngx_uint_t                      hash;
    ngx_table_elt_t                *h;
    ngx_http_fc_main_conf_t        *fmcf;
    ngx_http_fc_known_header_t     *k;
    ngx_http_upstream_header_t     *hh;
    ngx_http_upstream_main_conf_t  *umcf;

    if (name->len == 0) {
        return NGX_DECLINED;
    }

    if (!ngx_http_fc_valid_value(value->data, value->len)) {
        return NGX_DECLINED;
    }

    k = NULL;

    if (name->len <= NGX_HTTP_FC_KNOWN_HEADER_MAX_LEN) {
        fmcf = ngx_http_get_module_main_conf(r, ngx_http_fc_module);

        for (k = fmcf->known_headers[name->len]; k; k = k->next) {
            if (ngx_http_fc_is_known(k, name->data, name->len)) {
                break;
            }
        }
    }

    h = ngx_list_push(&r->upstream->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key.len = name->len;
    h->value.len = value->len;

    if (k) {
        h->key.data = ngx_pnalloc(r->pool, name->len + 1 + value->len + 1);
        if (h->key.data == NULL) {
            h->hash = 0;
            return NGX_ERROR;
        }

        h->lowcase_key = k->lowcase_key;
        h->hash = k->hash;
        hh = k->handler;

    } else {
        h->hash = 0;

        h->key.data = ngx_pnalloc(r->pool,
                                  name->len + 1 + value->len + 1 + name->len);
        if (h->key.data == NULL) {
            return NGX_ERROR;
        }

        h->lowcase_key = h->key.data + name->len + 1 + value->len + 1;

        /* the name: checked, lowercased and hashed in one pass */

        hash = 0;
        src = name->data;
        last = src + name->len;
        low = h->lowcase_key;

        while (src < last) {
            c = ngx_http_fc_name_lowcase[*src++];
            if (c == 0) {
                return NGX_DECLINED;
            }

            hash = ngx_hash(hash, c);
            *low++ = c;
        }

        h->hash = hash;

        umcf = ngx_http_get_module_main_conf(r, ngx_http_upstream_module);

        hh = ngx_hash_find(&umcf->headers_in_hash, hash, h->lowcase_key,
                           name->len);
    }

    h->value.data = h->key.data + name->len + 1;

    dst = ngx_cpymem(h->key.data, name->data, name->len);
    *dst = '\0';

    dst = ngx_cpymem(h->value.data, value->data, value->len);
    *dst = '\0';

    if (hh && hh->handler(r, h, hh->offset) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Runs the frame parser over the unread bytes of b and consumes them; a bad
 * frame, or one a callback refused (ctx->failed, logged there), is an error.
 */

static ngx_int_t
ngx_http_fc_parse(ngx_http_fc_ctx_t *ctx, ngx_buf_t *b, ngx_log_t *log)
{
    size_t  n;

    n = fc_parser_execute(&ctx->parser, &ngx_http_fc_parser_callbacks,
                          b->pos, b->last - b->pos);

    if (ctx->parser.error) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "runner sent invalid frame: %s",
                      fc_strerror(ctx->parser.error));
        return NGX_ERROR;
    }

    if (ctx->failed) {
        return NGX_ERROR;
    }

    b->pos += n;

    return NGX_OK;
}


/*
 * HEAD, 204 and 304: the runner still ends the stream with a DATA frame,
 * which is read here, before nginx sends the header and finalizes.
 */

static ngx_int_t
ngx_http_fc_discard_body(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx)
{
    ngx_buf_t            *b;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    b = &u->buffer;

    ctx->out = NULL;

    if (ngx_http_fc_parse(ctx, b, r->connection->log) != NGX_OK) {
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if (!ctx->done) {

        /* the headers were copied out: the buffer can be reused */

        if (b->pos == b->last) {
            b->pos = b->start;
            b->last = b->start;
        }

        return NGX_AGAIN;
    }

    u->keepalive = ngx_http_fc_keepalive_ok(ctx, b);

    return NGX_OK;
}


ngx_int_t
ngx_http_fc_filter_init(void *data)
{
    ngx_http_fc_ctx_t  *ctx = data;

    ngx_buf_t            *b;
    ngx_chain_t          *cl, **ll;
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = ctx->request;
    u = r->upstream;

    if (ctx->error_body) {
        for (ll = &u->out_bufs; *ll; ll = &(*ll)->next) { /* void */ }

        cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        b = cl->buf;

        b->pos = ctx->error_body->pos;
        b->last = ctx->error_body->last;
        b->memory = 1;
        b->flush = 1;
        b->tag = u->output.tag;

        *ll = cl;

        u->length = 0;

        return NGX_OK;
    }

    if (ctx->state != ngx_http_fc_st_body) {
        ctx->length = 0;

    } else {
        ctx->length = u->headers_in.content_length_n;
    }

    u->length = ctx->done ? 0 : 1;

    if (u->buffering) {
        u->pipe->length = ngx_http_fc_pipe_length(ctx);
    }

    if (ctx->tunnel && !ctx->done) {
        return ngx_http_fc_tunnel_start(r, ctx);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fc_filter(void *data, ssize_t bytes)
{
    ngx_http_fc_ctx_t  *ctx = data;

    ngx_buf_t            *b;
    ngx_chain_t          *cl, **ll;
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = ctx->request;
    u = r->upstream;
    b = &u->buffer;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fc filter bytes:%z", bytes);

    b->pos = b->last;
    b->last += bytes;

    if (ctx->done || ctx->error_body) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent %z bytes after END_STREAM", bytes);
        u->keepalive = 0;
        return NGX_ERROR;
    }

    for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
        ll = &cl->next;
    }

    ctx->out = ll;

    if (ngx_http_fc_parse(ctx, b, r->connection->log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->done) {
        u->length = 0;
        u->keepalive = ngx_http_fc_keepalive_ok(ctx, b);
    }

    return NGX_OK;
}


/*
 * fc_buffering on: the event pipe reads the response into its buffers and
 * this filter walks the frames in each, linking a shadow buffer to every
 * DATA payload slice, as proxy's chunked filter does for chunks.
 */

ngx_int_t
ngx_http_fc_pipe_filter(ngx_event_pipe_t *p, ngx_buf_t *buf)
{
    ngx_int_t            rc;
    ngx_http_fc_ctx_t   *ctx;
    ngx_http_request_t  *r;

    ctx = p->input_ctx;
    r = ctx->request;

    if (buf->pos == buf->last) {
        goto free;
    }

    if (ctx->done) {
        ngx_log_error(NGX_LOG_WARN, p->log, 0,
                      "runner sent data after END_STREAM");
        r->upstream->keepalive = 0;
        buf->pos = buf->last;
        goto free;
    }

    ctx->pipe_buf = buf;
    ctx->pipe_shadow = &buf->shadow;
    ctx->pipe_last = NULL;

    rc = ngx_http_fc_parse(ctx, buf, p->log);

    ctx->pipe_buf = NULL;

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    p->length = ngx_http_fc_pipe_length(ctx);

    if (ctx->done) {
        r->upstream->keepalive = ngx_http_fc_keepalive_ok(ctx, buf);
    }

    if (ctx->pipe_last) {
        ctx->pipe_last->shadow = buf;
        ctx->pipe_last->last_shadow = 1;

        return NGX_OK;
    }

free:

    /* there is no body in the buffer, add it to free chain */

    if (ngx_event_pipe_add_free_buf(p, buf) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The least the pipe must read before calling the filter again: the rest of
 * the frame plus the next header, or one byte between frames, so that a
 * short stream never waits for a buffer to fill.
 */

static off_t
ngx_http_fc_pipe_length(ngx_http_fc_ctx_t *ctx)
{
    if (ctx->done) {
        return 0;
    }

    if (!ctx->in_frame) {
        return 1;
    }

    if (ctx->frame_flags & FC_FLAG_END_STREAM) {
        return ctx->rest ? (off_t) ctx->rest : 1;
    }

    return ctx->rest + FC_FRAME_HEADER_SIZE;
}


static int
ngx_http_fc_on_header(fc_parser_t *p, const fc_frame_header_t *hdr)
{
    ngx_http_fc_ctx_t *ctx = p->data;

    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->done) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent a frame after END_STREAM");
        goto failed;
    }

    ctx->frame_type = hdr->type;
    ctx->frame_flags = hdr->flags;
    ctx->rest = hdr->length;
    ctx->in_frame = 1;

    switch (hdr->type) {

    case FC_FRAME_DATA:
        return 0;

    case FC_FRAME_ERROR:

        /* collected to be logged at the frame's end */

        ctx->abort_pos = ngx_pnalloc(r->pool, hdr->length + 1);
        if (ctx->abort_pos == NULL) {
            goto failed;
        }

        ctx->abort_last = ctx->abort_pos;
        return 0;

    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent unexpected frame type 0x%02xd "
                      "after RESPONSE", (ngx_uint_t) hdr->type);
        goto failed;
    }

failed:

    ctx->failed = 1;
    return 1;
}


static int
ngx_http_fc_on_payload(fc_parser_t *p, const uint8_t *data, size_t len)
{
    ngx_http_fc_ctx_t *ctx = p->data;

    ngx_buf_t            *b;
    ngx_chain_t          *cl;
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    r = ctx->request;
    u = r->upstream;

    ctx->rest -= len;

    if (ctx->frame_type == FC_FRAME_ERROR) {
        ctx->abort_last = ngx_cpymem(ctx->abort_last, data, len);
        return 0;
    }

    if (ctx->state != ngx_http_fc_st_body) {
        /* a response without a body */
        return 0;
    }

    if (ctx->length != -1) {
        if ((off_t) len > ctx->length) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "runner sent response body larger "
                          "than indicated content length");
            ctx->failed = 1;
            return 1;
        }

        ctx->length -= len;
    }

    if (ctx->pipe_buf) {
        return ngx_http_fc_pipe_payload(ctx, data, len);
    }

    /* zero copy: the buffer points into u->buffer */

    cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
    if (cl == NULL) {
        ctx->failed = 1;
        return 1;
    }

    b = cl->buf;

    b->flush = 1;
    b->memory = 1;
    b->pos = (u_char *) data;
    b->last = (u_char *) data + len;
    b->tag = u->output.tag;

    *ctx->out = cl;
    ctx->out = &cl->next;

    return 0;
}


/* A shadow of the pipe's raw buffer for one DATA payload slice. */

static int
ngx_http_fc_pipe_payload(ngx_http_fc_ctx_t *ctx, const uint8_t *data,
    size_t len)
{
    ngx_buf_t         *b, *buf;
    ngx_chain_t       *cl;
    ngx_event_pipe_t  *p;

    p = ctx->request->upstream->pipe;
    buf = ctx->pipe_buf;

    cl = ngx_chain_get_free_buf(p->pool, &p->free);
    if (cl == NULL) {
        ctx->failed = 1;
        return 1;
    }

    b = cl->buf;

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->pos = (u_char *) data;
    b->last = (u_char *) data + len;
    b->start = buf->start;
    b->end = buf->end;
    b->tag = p->tag;
    b->temporary = 1;
    b->recycled = 1;

    /* STUB */ b->num = buf->num;

    *ctx->pipe_shadow = b;
    ctx->pipe_shadow = &b->shadow;
    ctx->pipe_last = b;

    if (p->in) {
        *p->last_in = cl;

    } else {
        p->in = cl;
    }

    p->last_in = &cl->next;

    return 0;
}


static int
ngx_http_fc_on_frame_end(fc_parser_t *p)
{
    ngx_http_fc_ctx_t *ctx = p->data;

    ngx_int_t            rc;
    fc_error_t           err;
    ngx_str_t            code, message;
    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->in_frame = 0;

    if (ctx->frame_type == FC_FRAME_ERROR) {

        rc = fc_error_decode(ctx->abort_pos, ctx->abort_last - ctx->abort_pos,
                             &err);

        if (rc == FC_OK) {
            code.data = (u_char *) err.code.data;
            code.len = err.code.len;
            message.data = (u_char *) err.message.data;
            message.len = err.message.len;

            if (ngx_http_fc_escape(r->pool, &code, NGX_HTTP_FC_MAX_SHOWN_VALUE,
                                   &code)
                != NGX_OK
                || ngx_http_fc_escape(r->pool, &message,
                                      NGX_HTTP_FC_MAX_LOGGED_MESSAGE, &message)
                   != NGX_OK)
            {
                ctx->failed = 1;
                return 1;
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "runner aborted the response: %uD %V: \"%V\"",
                          err.status, &code, &message);

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "runner aborted the response with an invalid "
                          "ERROR: %s", fc_strerror((int) rc));
        }

        ctx->failed = 1;
        return 1;
    }

    if (!(ctx->frame_flags & FC_FLAG_END_STREAM)) {
        return 0;
    }

    ctx->done = 1;

    if (ctx->state == ngx_http_fc_st_body && ctx->length > 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner ended the response body %O bytes short "
                      "of its Content-Length", ctx->length);
        ctx->failed = 1;
        return 1;
    }

    return 0;
}


/*
 * The one rule for reusing a runner connection (u->keepalive): both sides
 * ended the stream, nothing the runner sent is left unread in b, and the
 * body is wholly sent.
 */

static ngx_uint_t
ngx_http_fc_keepalive_ok(ngx_http_fc_ctx_t *ctx, ngx_buf_t *b)
{
    return ctx->done
           && !ctx->tunnel
           && b->pos == b->last
           && ctx->output_closed
           && !ctx->output_blocked;
}


static void *
ngx_http_fc_alloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
}
