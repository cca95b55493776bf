
/*
 * A per-worker pool of idle runner connections for "fc_runner ADDRESS;".
 *
 * An address (no upstream{} block) becomes an implicit upstream, which
 * nginx's keepalive module cannot serve: it keeps its state in the
 * upstream{} block's configuration.  Without a pool every request would open
 * a new runner connection and a burst would overrun the runner's listen
 * backlog.  So the module wraps the balancer of its implicit upstreams the
 * way "upstream { keepalive N; }" does: a connection whose exchange ended
 * cleanly on both sides (u->keepalive, set by the response filters) goes
 * back to the pool, the next request to that address takes it.
 *
 * The pool size is "fc_keepalive N;" (0: no pool).  An idle connection is
 * closed after NGX_HTTP_FC_KEEPALIVE_TIMEOUT, or as soon as the runner
 * closes it or sends anything.
 *
 * A connect to a unix socket whose listen queue is full fails at once
 * (EAGAIN) where TCP would retransmit its SYN.  A burst that outruns the
 * runner's accept loop for a moment would then get 502 for requests that
 * never reached it.  So a failed connect to a unix socket is tried again,
 * after NGX_HTTP_FC_CONNECT_DELAY ms and then twice as long each time, at
 * most NGX_HTTP_FC_CONNECT_RETRIES times while the queue stays full.
 */


#include "ngx_http_fc_module.h"


/* an idle runner connection is closed after this long (ms) */
#define NGX_HTTP_FC_KEEPALIVE_TIMEOUT  60000

/* a full listen queue: 7 more tries, 5 ms apart and doubling (~0.6 s) */
#define NGX_HTTP_FC_CONNECT_RETRIES    7
#define NGX_HTTP_FC_CONNECT_DELAY      5


struct ngx_http_fc_keepalive_pool_s {
    ngx_http_upstream_srv_conf_t      *upstream;
    ngx_http_upstream_init_peer_pt     balancer_init_peer;

    ngx_queue_t                        idle;        /* most recent first */
    ngx_queue_t                        spare;       /* unused slots */
};


typedef struct {
    ngx_queue_t                        queue;
    ngx_http_fc_keepalive_pool_t      *pool;
    ngx_connection_t                  *connection;

    socklen_t                          socklen;
    ngx_sockaddr_t                     sockaddr;
} ngx_http_fc_keepalive_slot_t;


/* one per request: the balancer's own peer data and callbacks, wrapped */

typedef struct {
    ngx_http_fc_keepalive_pool_t      *pool;
    ngx_http_upstream_t               *upstream;

    void                              *balancer_data;
    ngx_event_get_peer_pt              balancer_get;
    ngx_event_free_peer_pt             balancer_free;

    ngx_event_t                        connect_timer;
    ngx_uint_t                         connects;    /* retries made */
    unsigned                           connect_failed:1;
} ngx_http_fc_keepalive_peer_t;


static ngx_int_t ngx_http_fc_keepalive_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_fc_keepalive_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_fc_keepalive_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_fc_keepalive_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);
static ngx_int_t ngx_http_fc_keepalive_connect_later(
    ngx_peer_connection_t *pc, ngx_http_fc_keepalive_peer_t *kp);
static void ngx_http_fc_keepalive_connect_handler(ngx_event_t *ev);
static void ngx_http_fc_keepalive_idle_handler(ngx_event_t *ev);
static void ngx_http_fc_keepalive_ignore_write(ngx_event_t *ev);
static void ngx_http_fc_keepalive_close(ngx_http_fc_keepalive_slot_t *slot);
static ngx_http_fc_keepalive_pool_t *ngx_http_fc_keepalive_find(
    ngx_http_fc_main_conf_t *fmcf, ngx_http_upstream_srv_conf_t *us);


/*
 * Called at parse time for the upstream that fc_runner's address (or the
 * default runner) became: upstreams are initialized before locations are
 * merged, so the balancer must be wrapped now.  An upstream that turns out
 * to be an upstream{} block, or that another balancer already claimed, is
 * left to its own configuration (its "keepalive" directive).
 */

ngx_int_t
ngx_http_fc_keepalive_add(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_fc_main_conf_t        *fmcf;
    ngx_http_fc_keepalive_pool_t   *pool, **pp;

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fc_module);

    if (ngx_http_fc_keepalive_find(fmcf, us)) {
        return NGX_OK;
    }

    if ((us->flags & NGX_HTTP_UPSTREAM_CREATE) || us->peer.init_upstream) {
        return NGX_OK;
    }

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_http_fc_keepalive_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->upstream = us;

    pp = ngx_array_push(&fmcf->keepalive_pools);
    if (pp == NULL) {
        return NGX_ERROR;
    }

    *pp = pool;

    us->peer.init_upstream = ngx_http_fc_keepalive_init_upstream;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_keepalive_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                      i, size;
    ngx_http_fc_main_conf_t        *fmcf;
    ngx_http_fc_keepalive_pool_t   *pool;
    ngx_http_fc_keepalive_slot_t   *slots;

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fc_module);

    pool = ngx_http_fc_keepalive_find(fmcf, us);

    /*
     * An upstream{} block defined after the fc_runner line that named it:
     * its own directives decide (a "keepalive" there wraps this call).
     */

    if (pool == NULL || (us->flags & NGX_HTTP_UPSTREAM_CREATE)) {
        return NGX_OK;
    }

    size = (fmcf->keepalive == NGX_CONF_UNSET)
           ? NGX_HTTP_FC_DEFAULT_KEEPALIVE : (ngx_uint_t) fmcf->keepalive;

    if (size == 0) {
        return NGX_OK;
    }

    slots = ngx_pcalloc(cf->pool, size * sizeof(ngx_http_fc_keepalive_slot_t));
    if (slots == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->spare);

    for (i = 0; i < size; i++) {
        slots[i].pool = pool;
        ngx_queue_insert_tail(&pool->spare, &slots[i].queue);
    }

    pool->balancer_init_peer = us->peer.init;
    us->peer.init = ngx_http_fc_keepalive_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_keepalive_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_t            *u;
    ngx_http_fc_main_conf_t        *fmcf;
    ngx_http_fc_keepalive_pool_t   *pool;
    ngx_http_fc_keepalive_peer_t   *kp;

    fmcf = ngx_http_get_module_main_conf(r, ngx_http_fc_module);

    pool = ngx_http_fc_keepalive_find(fmcf, us);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (pool->balancer_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    kp = ngx_pcalloc(r->pool, sizeof(ngx_http_fc_keepalive_peer_t));
    if (kp == NULL) {
        return NGX_ERROR;
    }

    u = r->upstream;

    kp->pool = pool;
    kp->upstream = u;
    kp->balancer_data = u->peer.data;
    kp->balancer_get = u->peer.get;
    kp->balancer_free = u->peer.free;

    u->peer.data = kp;
    u->peer.get = ngx_http_fc_keepalive_get_peer;
    u->peer.free = ngx_http_fc_keepalive_free_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fc_keepalive_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_fc_keepalive_peer_t  *kp = data;

    ngx_int_t                      rc;
    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_fc_keepalive_slot_t  *slot;

    /* the balancer picks the address, the pool may have a connection to it */

    rc = kp->balancer_get(pc, kp->balancer_data);

    if (rc != NGX_OK) {
        return rc;
    }

    for (q = ngx_queue_head(&kp->pool->idle);
         q != ngx_queue_sentinel(&kp->pool->idle);
         q = ngx_queue_next(q))
    {
        slot = ngx_queue_data(q, ngx_http_fc_keepalive_slot_t, queue);

        if (ngx_memn2cmp((u_char *) &slot->sockaddr, (u_char *) pc->sockaddr,
                         slot->socklen, pc->socklen)
            != 0)
        {
            continue;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&kp->pool->spare, q);

        c = slot->connection;
        slot->connection = NULL;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "fc keepalive: reusing runner connection %p", c);

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        c->idle = 0;
        c->sent = 0;
        c->data = NULL;
        c->log = pc->log;
        c->read->log = pc->log;
        c->write->log = pc->log;
        c->pool->log = pc->log;

        pc->connection = c;
        pc->cached = 1;

        return NGX_DONE;
    }

    if (kp->connect_failed && pc->sockaddr->sa_family == AF_UNIX) {
        return ngx_http_fc_keepalive_connect_later(pc, kp);
    }

    return NGX_OK;
}


/*
 * The retry of a failed connect: the socket is made now and handed to the
 * upstream as "connecting" (NGX_AGAIN, under fc_connect_timeout), and a
 * timer connects it.  It joins the event loop only once connected: an
 * unconnected unix socket polls as hung up.
 */

static ngx_int_t
ngx_http_fc_keepalive_connect_later(ngx_peer_connection_t *pc,
    ngx_http_fc_keepalive_peer_t *kp)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = ngx_socket(pc->sockaddr->sa_family, SOCK_STREAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, pc->log);

    if (c == NULL) {
        if (ngx_close_socket(s) == -1) {
            ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                          ngx_close_socket_n " failed");
        }

        return NGX_ERROR;
    }

    c->type = SOCK_STREAM;

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ALERT, pc->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    c->recv = ngx_recv;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;

    c->sendfile = 1;
    c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
    c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;

    c->log_error = pc->log_error;
    c->read->log = pc->log;
    c->write->log = pc->log;

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    pc->connection = c;

    kp->connect_timer.handler = ngx_http_fc_keepalive_connect_handler;
    kp->connect_timer.data = kp;
    kp->connect_timer.log = pc->log;

    ngx_add_timer(&kp->connect_timer,
                  NGX_HTTP_FC_CONNECT_DELAY << kp->connects);

    return NGX_AGAIN;
}


static void
ngx_http_fc_keepalive_connect_handler(ngx_event_t *ev)
{
    ngx_http_fc_keepalive_peer_t *kp = ev->data;

    ngx_err_t               err;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    pc = &kp->upstream->peer;
    c = pc->connection;

    kp->connects++;

    if (connect(c->fd, pc->sockaddr, pc->socklen) == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN && kp->connects < NGX_HTTP_FC_CONNECT_RETRIES) {
            ngx_add_timer(ev, NGX_HTTP_FC_CONNECT_DELAY << kp->connects);
            return;
        }

        /*
         * Given up: the upstream's write handler finds the socket not
         * connected and fails the request over (or with 502).
         */

        ngx_log_error(NGX_LOG_ERR, c->log, err,
                      "connect() to %V failed, %ui times",
                      pc->name, kp->connects + 1);

        c->write->ready = 1;
        ngx_post_event(c->write, &ngx_posted_events);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "fc keepalive: connected to %V after %ui retries",
                   pc->name, kp->connects);

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            c->write->error = 1;
        }

    } else if (ngx_add_event(c->read, NGX_READ_EVENT,
                             (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                             ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
               != NGX_OK)
    {
        c->write->error = 1;
    }

    c->write->ready = 1;
    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * The exchange is over.  Its connection is kept only when both sides ended
 * the stream and nothing is left unread or unsent (u->keepalive, see
 * ngx_http_fc_keepalive_ok()); the oldest idle one makes room if needed.
 */

static void
ngx_http_fc_keepalive_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_fc_keepalive_peer_t  *kp = data;

    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_upstream_t           *u;
    ngx_http_fc_keepalive_slot_t  *slot;

    u = kp->upstream;
    c = pc->connection;

    if (kp->connect_timer.timer_set) {
        ngx_del_timer(&kp->connect_timer);
    }

    if ((state & NGX_PEER_FAILED) && c == NULL && !kp->connect_failed
        && pc->sockaddr->sa_family == AF_UNIX)
    {
        /* nginx's own connect failed: one more try, see connect_later() */

        kp->connect_failed = 1;
        kp->balancer_free(pc, kp->balancer_data, state);
        pc->tries = 1;
        return;
    }

    if ((state & NGX_PEER_FAILED)
        || c == NULL
        || !u->keepalive
        || !u->request_body_sent
        || c->read->eof || c->read->error || c->read->timedout
        || c->write->error || c->write->timedout
        || ngx_terminate || ngx_exiting
        || ngx_handle_read_event(c->read, 0) != NGX_OK)
    {
        goto done;
    }

    if (ngx_queue_empty(&kp->pool->spare)) {
        q = ngx_queue_last(&kp->pool->idle);
        ngx_http_fc_keepalive_close(
                         ngx_queue_data(q, ngx_http_fc_keepalive_slot_t, queue));
    }

    q = ngx_queue_head(&kp->pool->spare);
    ngx_queue_remove(q);
    ngx_queue_insert_head(&kp->pool->idle, q);

    slot = ngx_queue_data(q, ngx_http_fc_keepalive_slot_t, queue);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "fc keepalive: keeping runner connection %p", c);

    slot->connection = c;
    slot->socklen = pc->socklen;
    ngx_memcpy(&slot->sockaddr, pc->sockaddr, pc->socklen);

    pc->connection = NULL;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->read->delayed = 0;
    ngx_add_timer(c->read, NGX_HTTP_FC_KEEPALIVE_TIMEOUT);

    c->read->handler = ngx_http_fc_keepalive_idle_handler;
    c->write->handler = ngx_http_fc_keepalive_ignore_write;

    c->data = slot;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;

    if (c->read->ready) {
        ngx_http_fc_keepalive_idle_handler(c->read);
    }

done:

    kp->balancer_free(pc, kp->balancer_data, state);
}


/*
 * An idle connection became readable (the runner closed it: it never speaks
 * first), timed out, or the worker is shutting down (c->close).
 */

static void
ngx_http_fc_keepalive_idle_handler(ngx_event_t *ev)
{
    int                            n;
    char                           byte;
    ngx_connection_t              *c;

    c = ev->data;

    if (!c->close && !ev->timedout) {
        n = recv(c->fd, &byte, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            ev->ready = 0;

            if (ngx_handle_read_event(ev, 0) == NGX_OK) {
                return;
            }
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "fc keepalive: closing idle runner connection %p", c);

    ngx_http_fc_keepalive_close(c->data);
}


static void
ngx_http_fc_keepalive_ignore_write(ngx_event_t *ev)
{
}


static void
ngx_http_fc_keepalive_close(ngx_http_fc_keepalive_slot_t *slot)
{
    ngx_connection_t  *c;

    c = slot->connection;
    slot->connection = NULL;

    ngx_queue_remove(&slot->queue);
    ngx_queue_insert_head(&slot->pool->spare, &slot->queue);

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


static ngx_http_fc_keepalive_pool_t *
ngx_http_fc_keepalive_find(ngx_http_fc_main_conf_t *fmcf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                      i;
    ngx_http_fc_keepalive_pool_t  **pools;

    pools = fmcf->keepalive_pools.elts;

    for (i = 0; i < fmcf->keepalive_pools.nelts; i++) {
        if (pools[i]->upstream == us) {
            return pools[i];
        }
    }

    return NULL;
}
