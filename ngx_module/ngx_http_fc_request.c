
/*
 * The REQUEST frame: the client's request line, headers and connection
 * data in one msgpack map (docs/protocol.md), built by create_request into
 * one buffer in front of the body buffers.
 */


#include "ngx_http_fc_module.h"


static ngx_int_t ngx_http_fc_uri(ngx_http_request_t *r, ngx_str_t *uri);
static int64_t ngx_http_fc_content_length(ngx_http_request_t *r);
static ngx_uint_t ngx_http_fc_header_is_set(ngx_array_t *set_headers,
    ngx_str_t *name);


/*
 * Encodes the REQUEST frame into ctx->request_frame.  The handler calls it
 * before the body is read, so a request the protocol cannot carry is
 * refused at once: 431 for too many header lines, 413 for a frame over
 * FC_MAX_META_PAYLOAD (ctx->error_message says why).
 */

ngx_int_t
ngx_http_fc_request_frame(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    int64_t content_length)
{
    size_t                     bound, len, strings;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, n, nset;
    ngx_str_t                 *set_values;
    fc_header_t               *hd;
    fc_request_t               req;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *header;
    ngx_str_t                  uri;
    ngx_http_fc_loc_conf_t    *flcf;
    ngx_http_fc_main_conf_t   *fmcf;
    ngx_http_fc_set_header_t  *sh;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fc_module);

    /* fc_set_header values, evaluated once: an empty one only removes */

    nset = 0;
    sh = NULL;
    set_values = NULL;

    if (flcf->set_headers) {
        sh = flcf->set_headers->elts;

        set_values = ngx_palloc(r->pool,
                                flcf->set_headers->nelts * sizeof(ngx_str_t));
        if (set_values == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < flcf->set_headers->nelts; i++) {
            if (ngx_http_complex_value(r, &sh[i].value, &set_values[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (set_values[i].len) {
                nset++;
            }
        }
    }

    /* the client's headers, as sent: order and duplicates kept */

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (n > FC_MAX_HEADERS) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "client sent %ui header lines, the fc protocol "
                      "carries at most %d", n, FC_MAX_HEADERS);

        ngx_str_set(&ctx->error_message, "the request has more than "
                    ngx_value(FC_MAX_HEADERS) " header lines");

        return NGX_HTTP_FC_HEADER_FIELDS_TOO_LARGE;
    }

    if (n + nset > FC_MAX_HEADERS) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "client sent %ui header lines and fc_set_header adds "
                      "%ui, the fc protocol carries at most %d",
                      n, nset, FC_MAX_HEADERS);

        ngx_str_set(&ctx->error_message, "the request has more than "
                    ngx_value(FC_MAX_HEADERS) " header lines");

        return NGX_HTTP_FC_HEADER_FIELDS_TOO_LARGE;
    }

    hd = ngx_palloc(r->pool, (n + nset ? n + nset : 1) * sizeof(fc_header_t));
    if (hd == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    strings = 0;
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

        /* a header fc_set_header names is the operator's, not the client's */

        if (ngx_http_fc_header_is_set(flcf->set_headers, &header[i].key)) {
            continue;
        }

        hd[n].name.data = (const char *) header[i].key.data;
        hd[n].name.len = header[i].key.len;
        hd[n].value.data = (const char *) header[i].value.data;
        hd[n].value.len = header[i].value.len;
        strings += header[i].key.len + header[i].value.len;
        n++;
    }

    for (i = 0; sh && i < flcf->set_headers->nelts; i++) {
        if (set_values[i].len == 0) {
            continue;
        }

        hd[n].name.data = (const char *) sh[i].name.data;
        hd[n].name.len = sh[i].name.len;
        hd[n].value.data = (const char *) set_values[i].data;
        hd[n].value.len = set_values[i].len;
        strings += sh[i].name.len + set_values[i].len;
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
    req.content_length = content_length;

    /* an explicit fc_read_timeout is when nginx stops waiting: tell the runner */
    req.deadline_ms = (flcf->read_timeout == NGX_CONF_UNSET_MSEC)
                      ? 0 : flcf->read_timeout;

    /* the REQUEST frame, in one buffer */

    /* the bound from the lengths: cheaper than fc_request_size_bound() */

    strings += req.function.len + req.method.len + req.uri.len
               + req.version.len + req.remote_addr.len + req.scheme.len
               + req.host.len + req.request_id.len;

    bound = fc_request_size_bound_sum(strings, n);

    if (bound > FC_MAX_META_PAYLOAD) {
        bound = FC_MAX_META_PAYLOAD;
    }

    /* room for the empty DATA frame that ends a request without a body */

    b = ngx_create_temp_buf(r->pool, 2 * FC_FRAME_HEADER_SIZE + bound);
    if (b == NULL) {
        return NGX_ERROR;
    }

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fc_module);

    rc = fc_request_encode_span(&req, &fmcf->request_keys,
                                b->last + FC_FRAME_HEADER_SIZE, bound, &len);

    if (rc != FC_OK) {
        if (rc == FC_ENOSPACE || rc == FC_ETOOBIG) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "request headers of function \"%V\" do not fit "
                          "in a REQUEST frame of %d bytes",
                          &ctx->function, FC_MAX_META_PAYLOAD);

            ctx->error_message.data = ngx_pnalloc(r->pool, 128);
            if (ctx->error_message.data == NULL) {
                return NGX_ERROR;
            }

            ctx->error_message.len =
                ngx_sprintf(ctx->error_message.data, "the request line and "
                            "headers are larger than the gateway's limit of "
                            "%d bytes", FC_MAX_META_PAYLOAD)
                - ctx->error_message.data;

            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;

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

    ctx->request_frame = b;
    ctx->request_length = content_length;
    ctx->request_ends = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_fc_create_request(ngx_http_request_t *r)
{
    int64_t               length;
    ngx_buf_t            *b;
    ngx_chain_t          *cl, *body;
    ngx_http_upstream_t  *u;
    ngx_http_fc_ctx_t    *ctx;

    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (r == r->main && r->log_handler != ngx_http_fc_log_error) {
        ctx->log_handler = r->log_handler;
        r->log_handler = ngx_http_fc_log_error;
    }

    /* the frame of the handler, unless the body read since changed its length */

    length = ngx_http_fc_content_length(r);

    if (ctx->request_frame == NULL || length != ctx->request_length) {
        if (ngx_http_fc_request_frame(r, ctx, length) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    b = ctx->request_frame;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    if (r->request_body_no_buffering) {

        /* the body follows as it arrives, see ngx_http_fc_body_output_filter */

        u->request_bufs = cl;

    } else if (u->request_bufs == NULL) {

        /*
         * No body: the empty DATA frame that ends the stream goes in the
         * REQUEST frame's buffer, so the request is one buffer, which
         * ngx_output_chain() hands to the body filter as it is.
         */

        if (!ctx->request_ends) {
            fc_frame_header_encode(b->last, FC_FRAME_DATA, FC_FLAG_END_STREAM,
                                   0);
            b->last += FC_FRAME_HEADER_SIZE;
            ctx->request_ends = 1;
        }

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


static ngx_uint_t
ngx_http_fc_header_is_set(ngx_array_t *set_headers, ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_http_fc_set_header_t  *sh;

    if (set_headers == NULL) {
        return 0;
    }

    sh = set_headers->elts;

    for (i = 0; i < set_headers->nelts; i++) {
        if (sh[i].name.len == name->len
            && ngx_strncasecmp(sh[i].name.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
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
