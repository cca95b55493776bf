
/*
 * ngx_http_fc_module: "fc_function NAME;" sends the request to a function
 * through fc-runner, over the fc wire protocol v1 (docs/protocol.md).
 *
 * Directives, conf merging and the upstream callback set follow nginx's own
 * grpc and uwsgi modules; the wire codec is src/fc_proto.c.
 */


#include "ngx_http_fc_module.h"
#include "fc_errors.h"


#define NGX_HTTP_FC_DEFAULT_RUNNER  "unix:/run/fc-runner/fc.sock"

#define ngx_http_fc_alpha(c)                                                  \
    ((((c) | 0x20) >= 'a') && (((c) | 0x20) <= 'z'))


typedef struct {
    ngx_http_upstream_conf_t       upstream;
    ngx_http_complex_value_t      *function;
} ngx_http_fc_loc_conf_t;


typedef struct {
    ngx_int_t                      request_id_index;
    ngx_http_upstream_srv_conf_t  *default_runner;
} ngx_http_fc_main_conf_t;


static ngx_int_t ngx_http_fc_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_fc_create_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_fc_uri(ngx_http_request_t *r, ngx_str_t *uri);
static int64_t ngx_http_fc_content_length(ngx_http_request_t *r);
static ngx_int_t ngx_http_fc_reinit_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_fc_process_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_fc_process_response(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, u_char *payload, size_t len);
static ngx_int_t ngx_http_fc_process_error(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, u_char *payload, size_t len);
static ngx_int_t ngx_http_fc_add_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_fc_discard_body(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx);
static ngx_int_t ngx_http_fc_filter_init(void *data);
static ngx_int_t ngx_http_fc_filter(void *data, ssize_t bytes);
static ngx_int_t ngx_http_fc_pipe_filter(ngx_event_pipe_t *p, ngx_buf_t *buf);
static off_t ngx_http_fc_pipe_length(ngx_http_fc_ctx_t *ctx);
static int ngx_http_fc_on_header(fc_parser_t *p, const fc_frame_header_t *hdr);
static int ngx_http_fc_on_payload(fc_parser_t *p, const uint8_t *data,
    size_t len);
static int ngx_http_fc_on_frame_end(fc_parser_t *p);
static int ngx_http_fc_pipe_payload(ngx_http_fc_ctx_t *ctx,
    const uint8_t *data, size_t len);
static void ngx_http_fc_abort_request(ngx_http_request_t *r);
static void ngx_http_fc_finalize_request(ngx_http_request_t *r, ngx_int_t rc);
static u_char *ngx_http_fc_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void *ngx_http_fc_alloc(void *pool, size_t size);

static ngx_int_t ngx_http_fc_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fc_cold_start_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fc_instance_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_fc_add_variables(ngx_conf_t *cf);
static void *ngx_http_fc_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_fc_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fc_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_fc_function(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fc_runner(ngx_conf_t *cf, ngx_command_t *cmd,
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
      offsetof(ngx_http_fc_loc_conf_t, upstream.read_timeout),
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
    NULL,                                  /* postconfiguration */

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


static fc_parser_callbacks_t  ngx_http_fc_parser_callbacks = {
    ngx_http_fc_on_header,
    ngx_http_fc_on_payload,
    ngx_http_fc_on_frame_end
};


static ngx_int_t
ngx_http_fc_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_upstream_t        *u;
    ngx_http_fc_ctx_t          *ctx;
    ngx_http_variable_value_t  *vv;
    ngx_http_fc_loc_conf_t     *flcf;
    ngx_http_fc_main_conf_t    *fmcf;

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

    if (ngx_http_complex_value(r, flcf->function, &ctx->function) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    vv = ngx_http_get_indexed_variable(r, fmcf->request_id_index);

    if (vv && !vv->not_found) {
        ctx->request_id.len = vv->len;
        ctx->request_id.data = vv->data;
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

    u->pipe = ngx_pcalloc(r->pool, sizeof(ngx_event_pipe_t));
    if (u->pipe == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    u->pipe->input_filter = ngx_http_fc_pipe_filter;
    u->pipe->input_ctx = ctx;

    if (!flcf->upstream.request_buffering) {
        r->request_body_no_buffering = 1;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_upstream_init);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_fc_create_request(ngx_http_request_t *r)
{
    size_t               bound, len;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_uint_t           i, n;
    ngx_chain_t         *cl, *body;
    fc_header_t         *hd;
    fc_request_t         req;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *header;
    ngx_http_upstream_t *u;
    ngx_http_fc_ctx_t   *ctx;
    ngx_str_t            uri;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (r == r->main && r->log_handler != ngx_http_fc_log_error) {
        ctx->log_handler = r->log_handler;
        r->log_handler = ngx_http_fc_log_error;
    }

    /* the client's headers, as sent: order and duplicates kept */

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (n > FC_MAX_HEADERS) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client sent %ui header lines, the fc protocol "
                      "carries at most %d", n, FC_MAX_HEADERS);
        return NGX_ERROR;
    }

    hd = ngx_palloc(r->pool, (n ? n : 1) * sizeof(fc_header_t));
    if (hd == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        hd[n].name.data = (const char *) header[i].key.data;
        hd[n].name.len = header[i].key.len;
        hd[n].value.data = (const char *) header[i].value.data;
        hd[n].value.len = header[i].value.len;
        n++;
    }

    if (ngx_http_fc_uri(r, &uri) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&req, sizeof(fc_request_t));

    req.function.data = (const char *) ctx->function.data;
    req.function.len = ctx->function.len;
    req.method.data = (const char *) r->method_name.data;
    req.method.len = r->method_name.len;
    req.uri.data = (const char *) uri.data;
    req.uri.len = uri.len;

    switch (r->http_version) {
    case NGX_HTTP_VERSION_9:
        req.version.data = "HTTP/0.9";
        break;
    case NGX_HTTP_VERSION_10:
        req.version.data = "HTTP/1.0";
        break;
    case NGX_HTTP_VERSION_20:
        req.version.data = "HTTP/2.0";
        break;
    default:
        req.version.data = "HTTP/1.1";
        break;
    }

    req.version.len = sizeof("HTTP/1.1") - 1;

    req.headers = hd;
    req.nheaders = n;
    req.remote_addr.data = (const char *) r->connection->addr_text.data;
    req.remote_addr.len = r->connection->addr_text.len;
    req.remote_port = ngx_inet_get_port(r->connection->sockaddr);

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        req.scheme.data = "https";
        req.scheme.len = sizeof("https") - 1;

    } else
#endif
    {
        req.scheme.data = "http";
        req.scheme.len = sizeof("http") - 1;
    }

    req.host.data = (const char *) r->headers_in.server.data;
    req.host.len = r->headers_in.server.len;
    req.request_id.data = (const char *) ctx->request_id.data;
    req.request_id.len = ctx->request_id.len;
    req.content_length = ngx_http_fc_content_length(r);
    req.deadline_ms = 0;

    /* the REQUEST frame, in one buffer */

    bound = fc_request_size_bound(&req);

    if (bound > FC_MAX_META_PAYLOAD) {
        bound = FC_MAX_META_PAYLOAD;
    }

    b = ngx_create_temp_buf(r->pool, FC_FRAME_HEADER_SIZE + bound);
    if (b == NULL) {
        return NGX_ERROR;
    }

    rc = fc_request_encode(&req, b->last + FC_FRAME_HEADER_SIZE, bound, &len);

    if (rc != FC_OK) {
        if (rc == FC_ENOSPACE || rc == FC_ETOOBIG) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "request headers of function \"%V\" do not fit "
                          "in a REQUEST frame of %d bytes",
                          &ctx->function, FC_MAX_META_PAYLOAD);

        } else {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "encoding REQUEST for function \"%V\" failed: %s",
                          &ctx->function, fc_strerror((int) rc));
        }

        return NGX_ERROR;
    }

    fc_frame_header_encode(b->last, FC_FRAME_REQUEST, 0, (uint32_t) len);
    b->last += FC_FRAME_HEADER_SIZE + len;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fc request: function \"%V\", uri \"%V\", %uz bytes",
                   &ctx->function, &uri, len);

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    if (r->request_body_no_buffering) {

        /* the body follows as it arrives, see ngx_http_fc_body_output_filter */

        u->request_bufs = cl;

    } else {

        /*
         * The body is read already: in memory or in a temp file.  Copies of
         * its buffers let fc_next_upstream send it again.
         */

        body = u->request_bufs;
        u->request_bufs = cl;

        while (body) {
            b = ngx_alloc_buf(r->pool);
            if (b == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(b, body->buf, sizeof(ngx_buf_t));

            cl->next = ngx_alloc_chain_link(r->pool);
            if (cl->next == NULL) {
                return NGX_ERROR;
            }

            cl = cl->next;
            cl->buf = b;

            body = body->next;
        }

        if (cl->buf == u->request_bufs->buf) {

            /* no body: a buffer that only ends it */

            b = ngx_calloc_buf(r->pool);
            if (b == NULL) {
                return NGX_ERROR;
            }

            cl->next = ngx_alloc_chain_link(r->pool);
            if (cl->next == NULL) {
                return NGX_ERROR;
            }

            cl = cl->next;
            cl->buf = b;
        }

        b->last_buf = 1;
    }

    b->flush = 1;
    cl->next = NULL;

    u->output.output_filter = ngx_http_fc_body_output_filter;
    u->output.filter_ctx = r;

    return NGX_OK;
}


/*
 * The client's raw URI, or, after "rewrite ... break", the rewritten URI
 * escaped plus the arguments: the rule of proxy_pass without a URI part.
 */

static ngx_int_t
ngx_http_fc_uri(ngx_http_request_t *r, ngx_str_t *uri)
{
    u_char     *p;
    size_t      len;
    uintptr_t   escape;

    if (r->valid_unparsed_uri) {
        *uri = r->unparsed_uri;
        return NGX_OK;
    }

    escape = 2 * ngx_escape_uri(NULL, r->uri.data, r->uri.len,
                                NGX_ESCAPE_URI);

    len = r->uri.len + escape;

    if (r->args.len) {
        len += 1 + r->args.len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    uri->data = p;

    if (escape) {
        p = (u_char *) ngx_escape_uri(p, r->uri.data, r->uri.len,
                                      NGX_ESCAPE_URI);

    } else {
        p = ngx_copy(p, r->uri.data, r->uri.len);
    }

    if (r->args.len) {
        *p++ = '?';
        p = ngx_copy(p, r->args.data, r->args.len);
    }

    uri->len = p - uri->data;

    return NGX_OK;
}


/* The body length when known: -1 while a chunked or HTTP/2 body streams. */

static int64_t
ngx_http_fc_content_length(ngx_http_request_t *r)
{
    off_t         size;
    ngx_chain_t  *cl;

    if (r->request_body_no_buffering) {

        if (r->headers_in.chunked) {
            return -1;
        }

        return r->headers_in.content_length_n;
    }

    /* buffered, or no body at all */

    if (r->request_body == NULL) {
        return 0;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    return size;
}


static ngx_int_t
ngx_http_fc_reinit_request(ngx_http_request_t *r)
{
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    ctx->in = NULL;
    ctx->busy = NULL;

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


static ngx_int_t
ngx_http_fc_process_header(ngx_http_request_t *r)
{
    u_char               *payload;
    size_t                size;
    ngx_int_t             rc;
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
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
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

        if (b->pos == b->last) {
            u->keepalive = 1;
        }

        return NGX_OK;
    }

    rc = ngx_http_fc_process_response(r, ctx, payload, hdr.length);
    if (rc != NGX_OK) {
        return rc;
    }

    b->pos += size;

    fc_parser_init(&ctx->parser, ctx);

    if (hdr.flags & FC_FLAG_END_STREAM) {

        /* a RESPONSE that ends the stream has no body */

        ctx->done = 1;
        u->buffering = 0;
        u->headers_in.content_length_n = 0;

        if (b->pos == b->last) {
            u->keepalive = 1;
        }

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
    size_t                          i, k;
    ngx_int_t                       rc;
    ngx_str_t                       name, value;
    fc_response_t                   resp;
    ngx_http_upstream_t            *u;

    u = r->upstream;

    rc = fc_response_decode(payload, len, &resp, ngx_http_fc_alloc, r->pool);

    if (rc != FC_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid RESPONSE: %s",
                      fc_strerror((int) rc));
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    if (resp.status < 200 || resp.status > 999) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "runner sent invalid status %uD in RESPONSE",
                      resp.status);
        return NGX_HTTP_UPSTREAM_INVALID_HEADER;
    }

    for (i = 0; i < resp.nheaders; i++) {

        name.data = (u_char *) resp.headers[i].name.data;
        name.len = resp.headers[i].name.len;
        value.data = (u_char *) resp.headers[i].value.data;
        value.len = resp.headers[i].value.len;

        if (name.len == 0) {
            goto invalid;
        }

        for (k = 0; k < name.len; k++) {
            if (name.data[k] <= ' ' || name.data[k] == ':'
                || name.data[k] == 0x7f)
            {
                goto invalid;
            }
        }

        for (k = 0; k < value.len; k++) {
            if (value.data[k] == '\0' || value.data[k] == CR
                || value.data[k] == LF)
            {
                goto invalid;
            }
        }

        rc = ngx_http_fc_add_header(r, &name, &value);
        if (rc != NGX_OK) {
            return rc;
        }

        continue;

    invalid:

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
    u_char               *p;
    size_t                size;
    ngx_int_t             rc;
    ngx_str_t             code, message, name, value;
    ngx_buf_t            *b;
    fc_error_t            err;
    ngx_uint_t            level;
    ngx_http_upstream_t  *u;

    static ngx_str_t  content_type = ngx_string("Content-Type");
    static ngx_str_t  json = ngx_string("application/json");
    static ngx_str_t  error_type = ngx_string(FC_ERROR_TYPE_HEADER);

    u = r->upstream;

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

    ngx_log_error(level, r->connection->log, 0,
                  "runner answered %uD %V: \"%V\"",
                  err.status, &code, &message);

    /* {"errorCode":"...","errorMessage":"...","requestId":"..."} */

    size = sizeof("{\"errorCode\":\"\",\"errorMessage\":\"\","
                  "\"requestId\":\"\"}\n") - 1
           + code.len + ngx_escape_json(NULL, code.data, code.len)
           + message.len + ngx_escape_json(NULL, message.data, message.len)
           + ctx->request_id.len
           + ngx_escape_json(NULL, ctx->request_id.data, ctx->request_id.len);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = b->last;
    p = ngx_cpymem(p, "{\"errorCode\":\"", sizeof("{\"errorCode\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, code.data, code.len);
    p = ngx_cpymem(p, "\",\"errorMessage\":\"",
                   sizeof("\",\"errorMessage\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, message.data, message.len);
    p = ngx_cpymem(p, "\",\"requestId\":\"", sizeof("\",\"requestId\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, ctx->request_id.data,
                                   ctx->request_id.len);
    p = ngx_cpymem(p, "\"}\n", sizeof("\"}\n") - 1);
    b->last = p;

    ctx->error_body = b;

    /* the code outlives u->buffer in a header */

    value.data = ngx_pnalloc(r->pool, code.len);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value.data, code.data, code.len);
    value.len = code.len;

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

    u->headers_in.status_n = err.status;
    u->headers_in.content_length_n = b->last - b->pos;

    if (u->state && u->state->status == 0) {
        u->state->status = err.status;
    }

    return NGX_OK;
}


/*
 * A response header line: copied out of u->buffer (NUL-terminated, as
 * nginx's header handlers expect) and handed to the upstream's header
 * handlers, so Content-Length, Location, Set-Cookie, fc_hide_header and
 * fc_pass_header work as with proxy_pass.
 */

static ngx_int_t
ngx_http_fc_add_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_table_elt_t                *h;
    ngx_http_upstream_header_t     *hh;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = ngx_http_get_module_main_conf(r, ngx_http_upstream_module);

    h = ngx_list_push(&r->upstream->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key.len = name->len;
    h->value.len = value->len;

    h->key.data = ngx_pnalloc(r->pool,
                              name->len + 1 + value->len + 1 + name->len);
    if (h->key.data == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    h->value.data = h->key.data + name->len + 1;
    h->lowcase_key = h->key.data + name->len + 1 + value->len + 1;

    ngx_memcpy(h->key.data, name->data, name->len);
    h->key.data[name->len] = '\0';
    ngx_memcpy(h->value.data, value->data, value->len);
    h->value.data[value->len] = '\0';

    ngx_strlow(h->lowcase_key, h->key.data, h->key.len);

    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    hh = ngx_hash_find(&umcf->headers_in_hash, h->hash,
                       h->lowcase_key, h->key.len);

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

    if (b->pos == b->last) {
        u->keepalive = 1;
    }

    return NGX_OK;
}


static ngx_int_t
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

    return NGX_OK;
}


static ngx_int_t
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

        if (b->pos == b->last && ctx->output_closed && !ctx->output_blocked) {
            u->keepalive = 1;
        }
    }

    return NGX_OK;
}


/*
 * fc_buffering on: the event pipe reads the response into its buffers and
 * this filter walks the frames in each, linking a shadow buffer to every
 * DATA payload slice, as proxy's chunked filter does for chunks.
 */

static ngx_int_t
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
        r->upstream->keepalive = buf->pos == buf->last
                                 && ctx->output_closed
                                 && !ctx->output_blocked;
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

static u_char *
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


static void *
ngx_http_fc_alloc(void *pool, size_t size)
{
    return ngx_palloc(pool, size);
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


static void *
ngx_http_fc_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_fc_main_conf_t  *fmcf;

    fmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fc_main_conf_t));
    if (fmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     fmcf->default_runner = NULL;
     */

    fmcf->request_id_index = NGX_CONF_UNSET;

    return fmcf;
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
     */

    conf->upstream.local = NGX_CONF_UNSET_PTR;
    conf->upstream.socket_keepalive = NGX_CONF_UNSET;
    conf->upstream.next_upstream_tries = NGX_CONF_UNSET_UINT;
    conf->upstream.connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.send_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.read_timeout = NGX_CONF_UNSET_MSEC;
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

    ngx_conf_merge_msec_value(conf->upstream.read_timeout,
                              prev->upstream.read_timeout, 60000);

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

    ngx_str_t  *value;
    ngx_url_t   u;

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
     * those defined later; an address becomes an implicit upstream.
     */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    flcf->upstream.upstream = ngx_http_upstream_add(cf, &u, 0);
    if (flcf->upstream.upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

