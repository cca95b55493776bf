
/*
 * ngx_http_fc_module: "fc_function NAME;" sends the request to a function
 * through fc-runner, over the fc wire protocol v1 (docs/protocol.md).
 *
 * Directives, conf merging and the upstream callback set follow nginx's own
 * grpc and uwsgi modules; the wire codec is src/fc_proto.c.  The REQUEST
 * frame is built in ngx_http_fc_request.c, the body framed in
 * ngx_http_fc_frames.c, the response parsed in ngx_http_fc_response.c.
 */


#include "ngx_http_fc_module.h"
#include "fc_errors.h"


#define NGX_HTTP_FC_DEFAULT_RUNNER  "unix:/run/fc-runner/fc.sock"

/*
 * $request_id is 16 random bytes in hex, as nginx makes it, but drawn from a
 * worker's pool of random bytes refilled NGX_HTTP_FC_ID_POOL_IDS ids at a
 * time: RAND_bytes() costs ~6,600 instructions a call, nearly all of it per
 * call rather than per byte, a third of the module's work per request.
 */
#define NGX_HTTP_FC_ID_BYTES     16
#define NGX_HTTP_FC_ID_POOL_IDS  256

#define ngx_http_fc_alpha(c)                                                  \
    ((((c) | 0x20) >= 'a') && (((c) | 0x20) <= 'z'))


static ngx_int_t ngx_http_fc_handler(ngx_http_request_t *r);
static void ngx_http_fc_read_body_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_fc_body_streams(ngx_http_request_t *r);
static ngx_uint_t ngx_http_fc_has_body(ngx_http_request_t *r);
static ngx_uint_t ngx_http_fc_valid_name(ngx_str_t *name);
static ngx_int_t ngx_http_fc_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *message);
static ngx_int_t ngx_http_fc_reinit_request(ngx_http_request_t *r);
static void ngx_http_fc_abort_request(ngx_http_request_t *r);
static void ngx_http_fc_finalize_request(ngx_http_request_t *r, ngx_int_t rc);

static ngx_int_t ngx_http_fc_request_id(ngx_http_request_t *r,
    ngx_http_fc_main_conf_t *fmcf, ngx_str_t *id);
static ngx_int_t ngx_http_fc_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fc_cold_start_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fc_instance_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_fc_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_fc_init(ngx_conf_t *cf);
static void *ngx_http_fc_create_main_conf(ngx_conf_t *cf);
static void ngx_http_fc_zone_cleanup(void *data);
static void *ngx_http_fc_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fc_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_fc_function(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fc_runner(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fc_set_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_conf_bitmask_t  ngx_http_fc_next_upstream_masks[] = {
    { ngx_string("error"), NGX_HTTP_UPSTREAM_FT_ERROR },
    { ngx_string("timeout"), NGX_HTTP_UPSTREAM_FT_TIMEOUT },
    { ngx_string("invalid_header"), NGX_HTTP_UPSTREAM_FT_INVALID_HEADER },
    { ngx_string("non_idempotent"), NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT },
    { ngx_string("http_500"), NGX_HTTP_UPSTREAM_FT_HTTP_500 },
    { ngx_string("http_502"), NGX_HTTP_UPSTREAM_FT_HTTP_502 },
    { ngx_string("http_503"), NGX_HTTP_UPSTREAM_FT_HTTP_503 },
    { ngx_string("http_504"), NGX_HTTP_UPSTREAM_FT_HTTP_504 },
    { ngx_string("http_403"), NGX_HTTP_UPSTREAM_FT_HTTP_403 },
    { ngx_string("http_404"), NGX_HTTP_UPSTREAM_FT_HTTP_404 },
    { ngx_string("http_429"), NGX_HTTP_UPSTREAM_FT_HTTP_429 },
    { ngx_string("off"), NGX_HTTP_UPSTREAM_FT_OFF },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_fc_commands[] = {

    { ngx_string("fc_function"),
      NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_fc_function,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fc_runner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fc_runner,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fc_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fc_main_conf_t, keepalive),
      NULL },

    { ngx_string("fc_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.connect_timeout),
      NULL },

    { ngx_string("fc_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.send_timeout),
      NULL },

    { ngx_string("fc_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, read_timeout),
      NULL },

    { ngx_string("fc_buffering"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.buffering),
      NULL },

    { ngx_string("fc_request_buffering"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.request_buffering),
      NULL },

    { ngx_string("fc_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.buffer_size),
      NULL },

    { ngx_string("fc_buffers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_conf_set_bufs_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.bufs),
      NULL },

    { ngx_string("fc_busy_buffers_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.busy_buffers_size_conf),
      NULL },

    { ngx_string("fc_pass_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.pass_headers),
      NULL },

    { ngx_string("fc_hide_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.hide_headers),
      NULL },

    { ngx_string("fc_next_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.next_upstream),
      &ngx_http_fc_next_upstream_masks },

    { ngx_string("fc_next_upstream_tries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.next_upstream_tries),
      NULL },

    { ngx_string("fc_next_upstream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.next_upstream_timeout),
      NULL },

    { ngx_string("fc_intercept_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.intercept_errors),
      NULL },

    { ngx_string("fc_ignore_client_abort"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.ignore_client_abort),
      NULL },

    { ngx_string("fc_set_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_fc_set_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fc_socket_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fc_loc_conf_t, upstream.socket_keepalive),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fc_module_ctx = {
    ngx_http_fc_add_variables,             /* preconfiguration */
    ngx_http_fc_init,                      /* postconfiguration */

    ngx_http_fc_create_main_conf,          /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fc_create_loc_conf,           /* create location configuration */
    ngx_http_fc_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_fc_module = {
    NGX_MODULE_V1,
    &ngx_http_fc_module_ctx,               /* module context */
    ngx_http_fc_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the runner's own Date and Server are replaced by nginx's, as with proxy */

static ngx_str_t  ngx_http_fc_hide_headers[] = {
    ngx_string("Date"),
    ngx_string("Server"),
    ngx_string("X-Accel-Expires"),
    ngx_string("X-Accel-Redirect"),
    ngx_string("X-Accel-Limit-Rate"),
    ngx_string("X-Accel-Buffering"),
    ngx_string("X-Accel-Charset"),
    ngx_null_string
};


static ngx_http_variable_t  ngx_http_fc_vars[] = {

    { ngx_string("fc_request_id"), NULL,
      ngx_http_fc_request_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fc_cold_start"), NULL,
      ngx_http_fc_cold_start_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fc_instance"), NULL,
      ngx_http_fc_instance_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_fc_handler(ngx_http_request_t *r)
{
    int64_t                     length;
    ngx_int_t                   rc;
    ngx_str_t                   shown;
    ngx_http_upstream_t        *u;
    ngx_http_fc_ctx_t          *ctx;
    ngx_http_fc_loc_conf_t     *flcf;
    ngx_http_fc_main_conf_t    *fmcf;

    static ngx_str_t  not_found = ngx_string(FC_ERR_FUNCTION_NOT_FOUND);
    static ngx_str_t  too_large = ngx_string(FC_ERR_REQUEST_TOO_LARGE);

    if (ngx_http_upstream_create(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fc_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->length = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_fc_module);

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fc_module);
    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fc_module);

    if (ngx_http_fc_request_id(r, fmcf, &ctx->request_id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_complex_value(r, flcf->function, &ctx->function) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * A name from a variable is the client's: checked before it goes
     * anywhere; a literal one was checked when the configuration was read.
     */

    if (flcf->function->lengths && !ngx_http_fc_valid_name(&ctx->function)) {

        if (ngx_http_fc_escape(r->pool, &ctx->function,
                               NGX_HTTP_FC_MAX_SHOWN_VALUE, &shown)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "invalid function name \"%V\"", &shown);

        ctx->error_message.data = ngx_pnalloc(r->pool, shown.len + 128);
        if (ctx->error_message.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->error_message.len =
            ngx_sprintf(ctx->error_message.data, "function '%V' is not "
                        "defined: a name is [A-Za-z_][A-Za-z0-9_-]{0,127}",
                        &shown)
            - ctx->error_message.data;

        return ngx_http_fc_send_error(r, NGX_HTTP_NOT_FOUND, &not_found,
                                      &ctx->error_message);
    }

    /*
     * A body up to client_body_buffer_size is read whole before the request
     * goes to the runner (a slow small upload holds no instance slot);
     * larger and chunked ones stream with fc_request_buffering off.
     */

    if (!flcf->upstream.request_buffering && ngx_http_fc_body_streams(r)) {
        r->request_body_no_buffering = 1;
    }

    /* a request the protocol cannot carry is refused before its body */

    if (r->headers_in.content_length_n >= 0) {
        length = r->headers_in.content_length_n;

    } else if (r->request_body_no_buffering) {
        length = -1;

    } else if (ngx_http_fc_has_body(r)) {
        length = NGX_MAX_OFF_T_VALUE;      /* the widest, encoded again */

    } else {
        length = 0;
    }

    rc = ngx_http_fc_request_frame(r, ctx, length);

    ctx->upgrade = ngx_http_fc_upgrade_requested(r, length);

    if (rc == NGX_HTTP_FC_HEADER_FIELDS_TOO_LARGE
        || rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
    {
        return ngx_http_fc_send_error(r, rc, &too_large, &ctx->error_message);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    u = r->upstream;

    ngx_str_set(&u->schema, "fc://");

    u->output.tag = (ngx_buf_tag_t) &ngx_http_fc_module;

    u->conf = &flcf->upstream;

    u->create_request = ngx_http_fc_create_request;
    u->reinit_request = ngx_http_fc_reinit_request;
    u->process_header = ngx_http_fc_process_header;
    u->abort_request = ngx_http_fc_abort_request;
    u->finalize_request = ngx_http_fc_finalize_request;

    u->input_filter_init = ngx_http_fc_filter_init;
    u->input_filter = ngx_http_fc_filter;
    u->input_filter_ctx = ctx;

    /*
     * The event pipe only with fc_buffering on: nothing switches buffering
     * on for one request (no change_buffering), as with grpc and memcached.
     * Its 304 bytes are what made a request's pool take a third block.
     */

    if (flcf->upstream.buffering) {
        u->pipe = ngx_pcalloc(r->pool, sizeof(ngx_event_pipe_t));
        if (u->pipe == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        u->pipe->input_filter = ngx_http_fc_pipe_filter;
        u->pipe->input_ctx = ctx;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_upstream_init);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    if (rc == NGX_AGAIN && !r->request_body_no_buffering) {

        /* the body is being collected: its timeout gets our 408 */

        ctx->body_handler = r->read_event_handler;
        r->read_event_handler = ngx_http_fc_read_body_handler;
    }

    return NGX_DONE;
}


/*
 * nginx's reader of a body that is collected first, wrapped: a client that
 * stalls longer than client_body_timeout gets 408 ClientTimeout and the
 * connection is closed; no runner connection or instance was involved.
 */

static void
ngx_http_fc_read_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  message;
    ngx_http_fc_ctx_t         *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    static ngx_str_t  client_timeout = ngx_string(FC_ERR_CLIENT_TIMEOUT);

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (!r->connection->read->timedout) {
        ctx->body_handler(r);
        return;
    }

    r->connection->timedout = 1;
    r->read_event_handler = ngx_http_block_reading;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, NGX_ETIMEDOUT,
                  "client timed out sending the request body "
                  "(client_body_timeout %M)", clcf->client_body_timeout);

    message.data = ngx_pnalloc(r->pool, 128);
    if (message.data == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    message.len = ngx_sprintf(message.data, "the client sent no request body "
                              "bytes for client_body_timeout (%M ms)",
                              clcf->client_body_timeout)
                  - message.data;

    /* the rest of the body is never read: no keepalive, no lingering */

    r->keepalive = 0;
    r->lingering_close = 0;

    rc = ngx_http_fc_send_error(r, NGX_HTTP_REQUEST_TIME_OUT, &client_timeout,
                                &message);

    ngx_http_finalize_request(r, rc);
}


/* A body that is not known to fit client_body_buffer_size streams. */

static ngx_uint_t
ngx_http_fc_body_streams(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (r->headers_in.content_length_n >= 0) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        return r->headers_in.content_length_n
               > (off_t) clcf->client_body_buffer_size;
    }

    return ngx_http_fc_has_body(r);
}


/* A body of unknown length: chunked, or HTTP/2 without content-length. */

static ngx_uint_t
ngx_http_fc_has_body(ngx_http_request_t *r)
{
    if (r->headers_in.chunked) {
        return 1;
    }

#if (NGX_HTTP_V2)
    if (r->stream) {
        return !r->stream->in_closed;
    }
#endif

    return 0;
}


/* FC's rule for a function name: [A-Za-z_][A-Za-z0-9_-]{0,127} */

static ngx_uint_t
ngx_http_fc_valid_name(ngx_str_t *name)
{
    u_char  *p, *last;

    if (name->len == 0 || name->len > FC_MAX_FUNCTION_NAME) {
        return 0;
    }

    p = name->data;
    last = p + name->len;

    if (!(ngx_http_fc_alpha(*p) || *p == '_')) {
        return 0;
    }

    for (p++; p < last; p++) {
        if (!(ngx_http_fc_alpha(*p) || (*p >= '0' && *p <= '9')
              || *p == '_' || *p == '-'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A value that came from outside, fit for a log line or an error message:
 * bytes outside printable ASCII, '"' and '\\' as \xNN, cut after max
 * bytes with "...".  shown may be value itself.
 */

ngx_int_t
ngx_http_fc_escape(ngx_pool_t *pool, ngx_str_t *value, size_t max,
    ngx_str_t *shown)
{
    u_char      *p, *src, *last;
    size_t       len;
    ngx_uint_t   cut;

    static u_char  hex[] = "0123456789ABCDEF";

    src = value->data;
    len = value->len;
    cut = 0;

    if (len > max) {
        len = max;
        cut = 1;
    }

    last = src + len;

    p = ngx_pnalloc(pool, len * 4 + sizeof("...") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    shown->data = p;

    for ( /* void */ ; src < last; src++) {
        if (*src < 0x20 || *src >= 0x7f || *src == '"' || *src == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[*src >> 4];
            *p++ = hex[*src & 0xf];

        } else {
            *p++ = *src;
        }
    }

    if (cut) {
        p = ngx_cpymem(p, "...", sizeof("...") - 1);
    }

    shown->len = p - shown->data;

    return NGX_OK;
}


/*
 * Answers the client with the gateway's JSON error (DESIGN §7) before any
 * runner is involved; returns what ngx_http_finalize_request() takes.
 */

static ngx_int_t
ngx_http_fc_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *message)
{
    ngx_int_t           rc;
    ngx_buf_t          *b;
    ngx_chain_t         out;
    ngx_table_elt_t    *h;
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (status != NGX_HTTP_REQUEST_TIME_OUT) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    b = ngx_http_fc_error_body(r, &ctx->request_id, code, message);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, FC_ERROR_TYPE_HEADER);
    h->value = *code;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_fc_reinit_request(ngx_http_request_t *r)
{
    ngx_chain_t        *cl;
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    ctx->in = NULL;
    ctx->busy = NULL;

    /*
     * The buffer ngx_output_chain() reads the body temp file into is reused
     * by the next try with the flags of its last use: a stale last_buf would
     * end the stream after the first piece.
     */
    for (cl = r->upstream->output.free; cl; cl = cl->next) {
        cl->buf->last_buf = 0;
        cl->buf->last_in_chain = 0;
        cl->buf->flush = 0;
    }

    /* an ERROR of the previous try may have switched buffering off */
    r->upstream->buffering = r->upstream->conf->buffering;

    ctx->state = ngx_http_fc_st_response;
    ctx->out = NULL;
    ctx->length = -1;
    ctx->rest = 0;
    ctx->error_body = NULL;
    ctx->abort_pos = NULL;
    ctx->abort_last = NULL;
    ngx_str_null(&ctx->instance);

    ctx->request_sent = 0;
    ctx->output_closed = 0;
    ctx->output_blocked = 0;
    ctx->response = 0;
    ctx->cold_start = 0;
    ctx->in_frame = 0;
    ctx->done = 0;
    ctx->failed = 0;

    return NGX_OK;
}


static void
ngx_http_fc_abort_request(ngx_http_request_t *r)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "abort fc request");
    return;
}


static void
ngx_http_fc_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_fc_ctx_t  *ctx;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "finalize fc request: %i", rc);

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);


    if (ctx && ctx->log_handler) {
        r->log_handler = ctx->log_handler;
        ctx->log_handler = NULL;
    }
}


/* Adds the function and request id to every error line of the exchange. */

u_char *
ngx_http_fc_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char             *p;
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL || ctx->log_handler == NULL) {
        return buf;
    }

    p = ctx->log_handler(r, sr, buf, len);

    len -= p - buf;
    buf = p;

    return ngx_snprintf(buf, len, ", function: \"%V\", request_id: \"%V\"",
                        &ctx->function, &ctx->request_id);
}


/*
 * The request's $request_id: the value nginx's variable would have, stored as
 * that variable, so an access log's $request_id and the function's
 * x-fc-request-id stay the same id.  A worker's pool is filled only in the
 * worker (the first request), never in the master before the fork.
 */
static ngx_int_t
ngx_http_fc_request_id(ngx_http_request_t *r, ngx_http_fc_main_conf_t *fmcf,
    ngx_str_t *id)
{
    ngx_http_variable_value_t  *vv;

#if (NGX_OPENSSL)
    u_char                      *p, *src;
    ngx_uint_t                   i;

    static u_char   pool[NGX_HTTP_FC_ID_POOL_IDS * NGX_HTTP_FC_ID_BYTES];
    static size_t   left;

    /*
     * "00" "01" ... "ff": a byte's two hex digits in one copy, a third of
     * ngx_hex_dump()'s work (two lookups and shifts per byte)
     */
    static u_char   pairs[256 * 2];
    static u_char   hex[] = "0123456789abcdef";

    vv = &r->variables[fmcf->request_id_index];

    if (!vv->valid && !vv->not_found) {

        if (left < NGX_HTTP_FC_ID_BYTES
            && RAND_bytes(pool, (int) sizeof(pool)) == 1)
        {
            left = sizeof(pool);

            if (pairs[0] == '\0') {
                for (i = 0; i < 256; i++) {
                    pairs[2 * i] = hex[i >> 4];
                    pairs[2 * i + 1] = hex[i & 0xf];
                }
            }
        }

        if (left >= NGX_HTTP_FC_ID_BYTES) {
            p = ngx_pnalloc(r->pool, 2 * NGX_HTTP_FC_ID_BYTES);
            if (p == NULL) {
                return NGX_ERROR;
            }

            src = pool + sizeof(pool) - left;

            for (i = 0; i < NGX_HTTP_FC_ID_BYTES; i++) {
                ngx_memcpy(p + 2 * i, &pairs[2 * src[i]], 2);
            }

            left -= NGX_HTTP_FC_ID_BYTES;

            vv->len = 2 * NGX_HTTP_FC_ID_BYTES;
            vv->valid = 1;
            vv->no_cacheable = 0;
            vv->not_found = 0;
            vv->data = p;
        }
    }
#endif

    vv = ngx_http_get_indexed_variable(r, fmcf->request_id_index);

    if (vv && !vv->not_found) {
        id->len = vv->len;
        id->data = vv->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL || ctx->request_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->len = ctx->request_id.len;
    v->data = ctx->request_id.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_cold_start_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    if (ctx == NULL || !ctx->response) {
        v->len = 0;
        v->data = (u_char *) "";
        return NGX_OK;
    }

    v->len = 1;
    v->data = (u_char *) (ctx->cold_start ? "1" : "0");

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_instance_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    if (ctx == NULL) {
        v->len = 0;
        v->data = (u_char *) "";
        return NGX_OK;
    }

    v->len = ctx->instance.len;
    v->data = ctx->instance.len ? ctx->instance.data : (u_char *) "";

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_fc_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * After every module's main configuration: nginx's upstream header handlers
 * (ngx_http_upstream_init_main_conf) exist for the known header table.
 */

static ngx_int_t
ngx_http_fc_init(ngx_conf_t *cf)
{
    ngx_http_fc_main_conf_t  *fmcf;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fc_module);

    return ngx_http_fc_known_headers_init(cf, fmcf);
}


static void *
ngx_http_fc_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_fc_main_conf_t  *fmcf;

    fmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fc_main_conf_t));
    if (fmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     fmcf->default_runner = NULL;
     *     fmcf->known_headers = { NULL, ... };
     */

    fmcf->request_id_index = NGX_CONF_UNSET;
    fmcf->keepalive = NGX_CONF_UNSET;

    if (ngx_array_init(&fmcf->keepalive_pools, cf->pool, 2,
                       sizeof(ngx_http_fc_keepalive_pool_t *))
        != NGX_OK)
    {
        return NULL;
    }

    /*
     * One zone for the cycle: a worker decodes one message at a time and
     * clears it after each (each worker has its own copy after the fork).
     */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    fmcf->zone = fc_zone_create();
    if (fmcf->zone == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_fc_zone_cleanup;
    cln->data = fmcf->zone;

    fc_request_keys_init(&fmcf->request_keys);

    return fmcf;
}


static void
ngx_http_fc_zone_cleanup(void *data)
{
    fc_zone_destroy(data);
}


static void *
ngx_http_fc_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fc_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fc_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->upstream.upstream = NULL;
     *     conf->upstream.ignore_headers = 0;
     *     conf->upstream.next_upstream = 0;
     *     conf->upstream.hide_headers_hash = { NULL, 0 };
     *     conf->function = NULL;
     *     conf->set_headers = NULL;
     */

    conf->upstream.local = NGX_CONF_UNSET_PTR;
    conf->upstream.socket_keepalive = NGX_CONF_UNSET;
    conf->upstream.next_upstream_tries = NGX_CONF_UNSET_UINT;
    conf->upstream.connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.send_timeout = NGX_CONF_UNSET_MSEC;
    conf->read_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.next_upstream_timeout = NGX_CONF_UNSET_MSEC;

    conf->upstream.buffer_size = NGX_CONF_UNSET_SIZE;
    conf->upstream.busy_buffers_size_conf = NGX_CONF_UNSET_SIZE;

    conf->upstream.buffering = NGX_CONF_UNSET;
    conf->upstream.request_buffering = NGX_CONF_UNSET;
    conf->upstream.ignore_client_abort = NGX_CONF_UNSET;
    conf->upstream.intercept_errors = NGX_CONF_UNSET;

    conf->upstream.hide_headers = NGX_CONF_UNSET_PTR;
    conf->upstream.pass_headers = NGX_CONF_UNSET_PTR;

    /* the hardcoded values */
    conf->upstream.cyclic_temp_file = 0;
    conf->upstream.send_lowat = 0;
    conf->upstream.max_temp_file_size = 0;     /* buffering is in memory */
    conf->upstream.temp_file_write_size = 0;
    conf->upstream.pass_request_headers = 1;
    conf->upstream.pass_request_body = 1;
    conf->upstream.force_ranges = 0;
    conf->upstream.pass_trailers = 0;

    /* the body keeps streaming to the runner after its response began */
    conf->upstream.preserve_output = 1;

    ngx_str_set(&conf->upstream.module, "fc");

    return conf;
}


static char *
ngx_http_fc_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_fc_loc_conf_t *prev = parent;
    ngx_http_fc_loc_conf_t *conf = child;

    size_t                     size;
    ngx_hash_init_t            hash;
    ngx_http_fc_main_conf_t   *fmcf;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_ptr_value(conf->upstream.local,
                              prev->upstream.local, NULL);

    ngx_conf_merge_value(conf->upstream.socket_keepalive,
                              prev->upstream.socket_keepalive, 0);

    ngx_conf_merge_uint_value(conf->upstream.next_upstream_tries,
                              prev->upstream.next_upstream_tries, 0);

    ngx_conf_merge_msec_value(conf->upstream.connect_timeout,
                              prev->upstream.connect_timeout, 60000);

    ngx_conf_merge_msec_value(conf->upstream.send_timeout,
                              prev->upstream.send_timeout, 60000);

    /* see NGX_HTTP_FC_DEFAULT_READ_TIMEOUT; an explicit value is deadline_ms */

    ngx_conf_merge_msec_value(conf->read_timeout, prev->read_timeout,
                              NGX_CONF_UNSET_MSEC);

    conf->upstream.read_timeout = (conf->read_timeout == NGX_CONF_UNSET_MSEC)
                                  ? NGX_HTTP_FC_DEFAULT_READ_TIMEOUT
                                  : conf->read_timeout;

    ngx_conf_merge_msec_value(conf->upstream.next_upstream_timeout,
                              prev->upstream.next_upstream_timeout, 0);

    ngx_conf_merge_size_value(conf->upstream.buffer_size,
                              prev->upstream.buffer_size,
                              (size_t) ngx_pagesize);

    if (conf->upstream.buffer_size < FC_FRAME_HEADER_SIZE + 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fc_buffer_size\" must be at least %d bytes",
                           FC_FRAME_HEADER_SIZE + 64);
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->upstream.buffering,
                              prev->upstream.buffering, 0);

    ngx_conf_merge_bufs_value(conf->upstream.bufs, prev->upstream.bufs,
                              8, ngx_pagesize);

    if (conf->upstream.bufs.num < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "there must be at least 2 \"fc_buffers\"");
        return NGX_CONF_ERROR;
    }

    size = conf->upstream.buffer_size;
    if (size < conf->upstream.bufs.size) {
        size = conf->upstream.bufs.size;
    }

    ngx_conf_merge_size_value(conf->upstream.busy_buffers_size_conf,
                              prev->upstream.busy_buffers_size_conf,
                              NGX_CONF_UNSET_SIZE);

    if (conf->upstream.busy_buffers_size_conf == NGX_CONF_UNSET_SIZE) {
        conf->upstream.busy_buffers_size = 2 * size;

    } else {
        conf->upstream.busy_buffers_size =
                                         conf->upstream.busy_buffers_size_conf;
    }

    if (conf->upstream.busy_buffers_size < size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
             "\"fc_busy_buffers_size\" must be equal to or greater than "
             "the maximum of the value of \"fc_buffer_size\" and "
             "one of the \"fc_buffers\"");

        return NGX_CONF_ERROR;
    }

    if (conf->upstream.busy_buffers_size
        > (conf->upstream.bufs.num - 1) * conf->upstream.bufs.size)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
             "\"fc_busy_buffers_size\" must be less than "
             "the size of all \"fc_buffers\" minus one buffer");

        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->upstream.request_buffering,
                              prev->upstream.request_buffering, 0);

    ngx_conf_merge_value(conf->upstream.ignore_client_abort,
                              prev->upstream.ignore_client_abort, 0);

    ngx_conf_merge_bitmask_value(conf->upstream.ignore_headers,
                              prev->upstream.ignore_headers,
                              NGX_CONF_BITMASK_SET);

    ngx_conf_merge_bitmask_value(conf->upstream.next_upstream,
                              prev->upstream.next_upstream,
                              (NGX_CONF_BITMASK_SET
                               |NGX_HTTP_UPSTREAM_FT_ERROR
                               |NGX_HTTP_UPSTREAM_FT_TIMEOUT));

    if (conf->upstream.next_upstream & NGX_HTTP_UPSTREAM_FT_OFF) {
        conf->upstream.next_upstream = NGX_CONF_BITMASK_SET
                                       |NGX_HTTP_UPSTREAM_FT_OFF;
    }

    ngx_conf_merge_value(conf->upstream.intercept_errors,
                              prev->upstream.intercept_errors, 0);

    hash.max_size = 512;
    hash.bucket_size = ngx_align(64, ngx_cacheline_size);
    hash.name = "fc_hide_headers_hash";

    if (ngx_http_upstream_hide_headers_hash(cf, &conf->upstream,
            &prev->upstream, ngx_http_fc_hide_headers, &hash)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->upstream.upstream == NULL) {
        conf->upstream.upstream = prev->upstream.upstream;
    }

    /* as proxy_set_header: a level without any inherits all of the outer */

    if (conf->set_headers == NULL) {
        conf->set_headers = prev->set_headers;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->noname && conf->function == NULL) {
        conf->function = prev->function;
    }

    if (conf->function) {

        if (conf->upstream.upstream == NULL) {
            fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fc_module);
            conf->upstream.upstream = fmcf->default_runner;
        }

        if (clcf->lmt_excpt && clcf->handler == NULL) {
            clcf->handler = ngx_http_fc_handler;
        }
    }

    return NGX_CONF_OK;
}


/*
 * fc_set_header NAME VALUE: the REQUEST frame carries NAME: VALUE instead
 * of the client's NAME headers; an empty VALUE only removes them.
 */

static char *
ngx_http_fc_set_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fc_loc_conf_t *flcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_fc_set_header_t          *sh;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "has an empty header name";
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == ':'
            || value[1].data[i] >= 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    /* the runner drops client x-fc-* and sets its own (docs/protocol.md) */

    if (value[1].len >= sizeof("x-fc-") - 1
        && ngx_strncasecmp(value[1].data, (u_char *) "x-fc-",
                           sizeof("x-fc-") - 1) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "header \"%V\" cannot be set: the x-fc-* "
                           "headers belong to the runner", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (flcf->set_headers == NULL) {
        flcf->set_headers = ngx_array_create(cf->pool, 4,
                                             sizeof(ngx_http_fc_set_header_t));
        if (flcf->set_headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    sh = ngx_array_push(flcf->set_headers);
    if (sh == NULL) {
        return NGX_CONF_ERROR;
    }

    sh->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &sh->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_fc_function(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fc_loc_conf_t *flcf = conf;

    u_char                            *p, *last;
    ngx_str_t                         *value;
    ngx_url_t                          u;
    ngx_http_fc_main_conf_t           *fmcf;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    static ngx_str_t  request_id = ngx_string("request_id");

    if (flcf->function) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty function name");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_script_variables_count(&value[1]) == 0) {

        /* a literal name must follow FC's rule [A-Za-z_][A-Za-z0-9_-]{0,127} */

        p = value[1].data;
        last = p + value[1].len;

        if (value[1].len > FC_MAX_FUNCTION_NAME
            || !(ngx_http_fc_alpha(*p) || *p == '_'))
        {
            goto invalid;
        }

        for (p++; p < last; p++) {
            if (!(ngx_http_fc_alpha(*p) || (*p >= '0' && *p <= '9')
                  || *p == '_' || *p == '-'))
            {
                goto invalid;
            }
        }
    }

    flcf->function = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (flcf->function == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = flcf->function;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_fc_handler;

    if (clcf->name.len && clcf->name.data[clcf->name.len - 1] == '/') {
        clcf->auto_redirect = 1;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fc_module);

    if (fmcf->request_id_index == NGX_CONF_UNSET) {
        fmcf->request_id_index = ngx_http_get_variable_index(cf, &request_id);
        if (fmcf->request_id_index == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }
    }

    if (fmcf->default_runner == NULL) {

        /*
         * Upstreams are initialized before locations are merged, so the
         * one for the default runner address is made here, at parse time.
         */

        ngx_memzero(&u, sizeof(ngx_url_t));

        ngx_str_set(&u.url, NGX_HTTP_FC_DEFAULT_RUNNER);
        u.no_resolve = 1;

        fmcf->default_runner = ngx_http_upstream_add(cf, &u, 0);
        if (fmcf->default_runner == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_fc_keepalive_add(cf, fmcf->default_runner) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid function name \"%V\": expected "
                       "[A-Za-z_][A-Za-z0-9_-]{0,127} or variables",
                       &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_fc_runner(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fc_loc_conf_t *flcf = conf;

    ngx_str_t   *value;
    ngx_url_t    u;
    ngx_uint_t   address;

    if (flcf->upstream.upstream) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strlcasestrn(value[1].data, value[1].data + value[1].len,
                         (u_char *) "://", 3 - 1)
        != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid runner address \"%V\": expected "
                           "\"unix:/path\", \"host:port\" or the name of "
                           "an upstream block", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid runner address \"%V\": %s",
                               &value[1], u.err);
        }

        return NGX_CONF_ERROR;
    }

    /*
     * A name without a port is looked up among the upstream blocks, also
     * those defined later; an address becomes an implicit upstream, with
     * the module's own keepalive pool.
     */

    address = (u.family == AF_UNIX || !u.no_port);

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    flcf->upstream.upstream = ngx_http_upstream_add(cf, &u, 0);
    if (flcf->upstream.upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    if (address
        && ngx_http_fc_keepalive_add(cf, flcf->upstream.upstream) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
