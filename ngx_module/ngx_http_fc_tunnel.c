
/*
 * WebSocket and other upgrades (docs/protocol.md, "Upgrades").
 *
 * nginx's own tunnel (u->upgrade, ngx_http_upstream_upgrade) copies raw
 * bytes between the two sockets; the runner connection carries frames, so
 * the module keeps nginx's non-buffered response path for the function's
 * side (its DATA payloads go to the client as they come, the runner's
 * END_STREAM finalizes the request) and adds one handler for the client's
 * side: the client's bytes are read into one buffer and sent as one DATA
 * frame, the next read waiting until that frame is sent (backpressure
 * without queueing).  The client closing is an empty DATA frame with
 * END_STREAM; the request then ends when the runner's END_STREAM comes.
 * A tunnelled runner connection is never reused.
 */


#include "ngx_http_fc_module.h"


static void ngx_http_fc_tunnel_read_client(ngx_http_request_t *r);
static void ngx_http_fc_tunnel_write_runner(ngx_http_request_t *r,
    ngx_http_upstream_t *u);
static ngx_int_t ngx_http_fc_tunnel_send(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, ngx_chain_t *out);
static void ngx_http_fc_tunnel_close_client_side(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx);


/*
 * The rule the runner applies too (upgrade_protocol() in runner/http_head):
 * an HTTP/1.1 request, not HEAD, without a body, with an Upgrade header and
 * the token "upgrade" in its Connection header.
 */

ngx_uint_t
ngx_http_fc_upgrade_requested(ngx_http_request_t *r, int64_t content_length)
{
    u_char           *p, *last, *start, *end;
    ngx_uint_t        i, upgrade, connection;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (r->http_version != NGX_HTTP_VERSION_11
        || r->method == NGX_HTTP_HEAD
        || content_length != 0
        || r->headers_in.upgrade == NULL)     /* nginx's own note of one */
    {
        return 0;
    }

    upgrade = 0;
    connection = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Upgrade") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Upgrade",
                               sizeof("Upgrade") - 1) == 0)
        {
            upgrade = 1;
            continue;
        }

        if (h[i].key.len != sizeof("Connection") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Connection",
                               sizeof("Connection") - 1) != 0)
        {
            continue;
        }

        /* the comma-separated tokens */

        p = h[i].value.data;
        last = p + h[i].value.len;

        while (p < last) {
            start = p;

            while (p < last && *p != ',') {
                p++;
            }

            end = p++;

            while (start < end && (*start == ' ' || *start == '\t')) {
                start++;
            }

            while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
                end--;
            }

            if (end - start == sizeof("upgrade") - 1
                && ngx_strncasecmp(start, (u_char *) "upgrade",
                                   sizeof("upgrade") - 1) == 0)
            {
                connection = 1;
            }
        }
    }

    return upgrade && connection;
}


/*
 * Called by the input filter init once the 101 header is on its way to the
 * client: from now on the client's bytes are the tunnel's.
 */

ngx_int_t
ngx_http_fc_tunnel_start(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx)
{
    size_t                len;
    ngx_connection_t     *c;
    ngx_http_upstream_t  *u;

    c = r->connection;
    u = r->upstream;

    if (!ctx->output_closed || ctx->output_blocked) {

        /* the runner answered 101 before it had the whole (empty) body */

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "runner switched protocols before the request of "
                      "function \"%V\" was sent", &ctx->function);
        return NGX_ERROR;
    }

    len = FC_FRAME_HEADER_SIZE + u->conf->buffer_size;

    ctx->tunnel_buf = ngx_create_temp_buf(r->pool, len);
    if (ctx->tunnel_buf == NULL) {
        return NGX_ERROR;
    }

    ctx->tunnel_buf->tag = (ngx_buf_tag_t) &ngx_http_fc_tunnel_start;
    ctx->tunnel_buf->flush = 1;

    /* the client connection ends with the tunnel */
    r->keepalive = 0;

    r->read_event_handler = ngx_http_fc_tunnel_read_client;
    u->write_event_handler = ngx_http_fc_tunnel_write_runner;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "fc tunnel: function \"%V\" switched protocols",
                   &ctx->function);

    /*
     * Bytes the client sent after its request (with the request, or since:
     * their read event is gone with edge-triggered events) are read on the
     * next loop iteration.
     */

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_http_fc_tunnel_read_client(ngx_http_request_t *r)
{
    size_t                size;
    ssize_t               n;
    ngx_buf_t            *b, *hb;
    ngx_chain_t           out;
    ngx_connection_t     *c;
    ngx_http_fc_ctx_t    *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL || ctx->tunnel_closed || ctx->done) {
        return;
    }

    if (ctx->tunnel_busy) {
        /* the last frame is not sent yet: read again once it is */
        return;
    }

    b = ctx->tunnel_buf;
    size = (size_t) (b->end - b->start) - FC_FRAME_HEADER_SIZE;

    for ( ;; ) {

        hb = r->header_in;

        if (hb && hb->pos < hb->last) {

            /* sent together with the request */

            n = ngx_min((size_t) (hb->last - hb->pos), size);
            ngx_memcpy(b->start + FC_FRAME_HEADER_SIZE, hb->pos, n);
            hb->pos += n;

        } else {
            n = c->recv(c, b->start + FC_FRAME_HEADER_SIZE, size);
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_finalize_request(r, NGX_ERROR);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "fc tunnel: the client closed (%z)", n);

            ngx_http_fc_tunnel_close_client_side(r, ctx);
            return;
        }

        fc_frame_header_encode(b->start, FC_FRAME_DATA, 0, (uint32_t) n);

        b->pos = b->start;
        b->last = b->start + FC_FRAME_HEADER_SIZE + n;

        out.buf = b;
        out.next = NULL;

        if (ngx_http_fc_tunnel_send(r, ctx, &out) != NGX_OK) {
            return;
        }
    }
}


/* The client closed: END_STREAM to the runner, and no more reading. */

static void
ngx_http_fc_tunnel_close_client_side(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    ctx->tunnel_closed = 1;

    r->read_event_handler = ngx_http_block_reading;

    b = ctx->tunnel_buf;

    fc_frame_header_encode(b->start, FC_FRAME_DATA, FC_FLAG_END_STREAM, 0);

    b->pos = b->start;
    b->last = b->start + FC_FRAME_HEADER_SIZE;

    out.buf = b;
    out.next = NULL;

    (void) ngx_http_fc_tunnel_send(r, ctx, &out);
}


/*
 * NGX_OK: the frame is sent and the buffer free; NGX_AGAIN: sending it
 * waits for the runner connection; NGX_ERROR: the request is finalized.
 */

static ngx_int_t
ngx_http_fc_tunnel_send(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx,
    ngx_chain_t *out)
{
    ngx_int_t             rc;
    ngx_connection_t     *pc;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    pc = u->peer.connection;

    rc = ngx_chain_writer(&u->writer, out);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_socket_errno,
                      "fc tunnel: sending to the runner failed");
        ngx_http_finalize_request(r, NGX_ERROR);
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN) {
        ctx->tunnel_busy = 1;

        ngx_add_timer(pc->write, u->conf->send_timeout);

        if (ngx_handle_write_event(pc->write, u->conf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    ctx->tunnel_busy = 0;

    if (pc->write->timer_set) {
        ngx_del_timer(pc->write);
    }

    return NGX_OK;
}


static void
ngx_http_fc_tunnel_write_runner(ngx_http_request_t *r, ngx_http_upstream_t *u)
{
    ngx_connection_t   *pc;
    ngx_http_fc_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);
    pc = u->peer.connection;

    if (ctx == NULL || !ctx->tunnel_busy) {
        return;
    }

    if (pc->write->timedout) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                      "fc tunnel: the runner did not take the client's "
                      "bytes within fc_send_timeout");
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (ngx_http_fc_tunnel_send(r, ctx, NULL) != NGX_OK) {
        return;
    }

    if (!ctx->tunnel_closed) {
        ngx_http_fc_tunnel_read_client(r);
    }
}
