
/*
 * The request body as DATA frames.
 *
 * The upstream's output chain calls this filter (u->output.output_filter)
 * with the REQUEST frame first and then the client's body buffers, in
 * memory or in the client body temp file, as they become available.  Each
 * body buffer goes out as is, behind an 8-byte DATA header kept in a small
 * buffer of its own: the body bytes are never copied.  A body buffer larger
 * than FC_MAX_FRAME_PAYLOAD is cut into several frames by shadow buffers.
 * The last frame carries END_STREAM; when the body ends on a buffer that
 * holds no data, an empty DATA frame carries it.
 */


#include "ngx_http_fc_module.h"


static ngx_chain_t *ngx_http_fc_frame_header(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx);


ngx_int_t
ngx_http_fc_body_output_filter(void *data, ngx_chain_t *in)
{
    ngx_http_request_t  *r = data;

    off_t                file_pos;
    u_char              *pos, *start, *f;
    size_t               len;
    ngx_buf_t           *b, *ib;
    ngx_int_t            rc;
    ngx_uint_t           next, last;
    ngx_chain_t         *cl, *out, *ln, **ll;
    ngx_http_fc_ctx_t   *ctx;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fc output filter");

    ctx = ngx_http_get_module_ctx(r, ngx_http_fc_module);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (!ctx->request_sent && ctx->request_ends && in && in->next == NULL
        && in->buf == ctx->request_frame)
    {
        /*
         * A request without a body: create_request put the stream's end in
         * the REQUEST frame's buffer, which goes out as it is, with no
         * chain of ours to keep (the writer copies the link).
         */

        ctx->request_sent = 1;
        ctx->output_closed = 1;

        rc = ngx_chain_writer(&r->upstream->writer, in);

        ctx->output_blocked = (rc == NGX_AGAIN);

        return rc;
    }

    if (in) {
        if (ngx_chain_add_copy(r->pool, &ctx->in, in) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    out = NULL;
    ll = &out;

    if (!ctx->request_sent && ctx->in) {

        /* the first buffer is the REQUEST frame built by create_request */

        ctx->request_sent = 1;

        if (ctx->request_ends) {
            /* create_request put the stream's end in the frame's buffer */
            ctx->output_closed = 1;
        }

        *ll = ctx->in;
        ll = &ctx->in->next;

        ctx->in = ctx->in->next;
    }

    f = NULL;
    len = 0;
    last = 0;

#if (NGX_SUPPRESS_WARN)
    file_pos = 0;
    pos = NULL;
#endif

    for (in = ctx->in; in; /* void */) {

        ib = in->buf;

        ngx_log_debug6(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fc output in l:%d f:%d %p, size: %z "
                       "file: %O, size: %O",
                       ib->last_buf, ib->in_file, ib->pos,
                       ib->last - ib->pos,
                       ib->file_pos, ib->file_last - ib->file_pos);

        if (ib->last_buf) {
            last = 1;
        }

        if (ngx_buf_special(ib) || ngx_buf_size(ib) == 0) {
            goto next;
        }

        if (ib->in_file) {
            file_pos = ib->file_pos;

        } else {
            pos = ib->pos;
        }

        do {
            cl = ngx_http_fc_frame_header(r, ctx);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            f = cl->buf->last;
            cl->buf->last += FC_FRAME_HEADER_SIZE;

            *ll = cl;
            ll = &cl->next;

            /* a shadow of the body buffer covering this frame's payload */

            cl = ngx_chain_get_free_buf(r->pool, &ctx->free);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;
            start = b->start;

            ngx_memcpy(b, ib, sizeof(ngx_buf_t));

            /* keep the memory of recycled header buffers */
            b->start = start;

            if (ib->in_file) {
                b->file_pos = file_pos;

                if (ib->file_last - file_pos > FC_MAX_FRAME_PAYLOAD) {
                    file_pos += FC_MAX_FRAME_PAYLOAD;
                    next = 0;

                } else {
                    file_pos = ib->file_last;
                    next = 1;
                }

                b->file_last = file_pos;
                len = (size_t) (b->file_last - b->file_pos);

            } else {
                b->pos = pos;

                if (ib->last - pos > FC_MAX_FRAME_PAYLOAD) {
                    pos += FC_MAX_FRAME_PAYLOAD;
                    next = 0;

                } else {
                    pos = ib->last;
                    next = 1;
                }

                b->last = pos;
                len = (size_t) (b->last - b->pos);
            }

            b->tag = (ngx_buf_tag_t) &ngx_http_fc_body_output_filter;
            b->shadow = ib;
            b->last_shadow = next;
            b->last_buf = 0;
            b->last_in_chain = 0;

            *ll = cl;
            ll = &cl->next;

            fc_frame_header_encode(f, FC_FRAME_DATA, 0, (uint32_t) len);

        } while (!next);

    next:

        ln = in;
        in = in->next;

        ngx_free_chain(r->pool, ln);
    }

    ctx->in = NULL;

    if (last && !ctx->output_closed) {

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fc output end stream");

        if (f) {
            fc_frame_header_encode(f, FC_FRAME_DATA, FC_FLAG_END_STREAM,
                                   (uint32_t) len);

        } else {
            cl = ngx_http_fc_frame_header(r, ctx);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            fc_frame_header_encode(cl->buf->last, FC_FRAME_DATA,
                                   FC_FLAG_END_STREAM, 0);
            cl->buf->last += FC_FRAME_HEADER_SIZE;

            *ll = cl;
            ll = &cl->next;
        }

        ctx->output_closed = 1;
    }

    *ll = NULL;

    rc = ngx_chain_writer(&r->upstream->writer, out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &out,
                            (ngx_buf_tag_t) &ngx_http_fc_body_output_filter);

    for (cl = ctx->free; cl; cl = cl->next) {

        /* the body buffers whose frames are all sent are done with */

        if (cl->buf->shadow) {
            if (cl->buf->last_shadow) {
                b = cl->buf->shadow;
                b->pos = b->last;
                b->file_pos = b->file_last;
            }

            cl->buf->shadow = NULL;
        }
    }

    ctx->output_blocked = (rc == NGX_AGAIN);

    return rc;
}


static ngx_chain_t *
ngx_http_fc_frame_header(ngx_http_request_t *r, ngx_http_fc_ctx_t *ctx)
{
    u_char       *start;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(r->pool, &ctx->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;
    start = b->start;

    if (start == NULL) {
        start = ngx_palloc(r->pool, FC_FRAME_HEADER_SIZE);
        if (start == NULL) {
            return NULL;
        }
    }

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->start = start;
    b->pos = start;
    b->last = start;
    b->end = start + FC_FRAME_HEADER_SIZE;

    b->tag = (ngx_buf_tag_t) &ngx_http_fc_body_output_filter;
    b->temporary = 1;
    b->flush = 1;

    return cl;
}
