
/*
 * ngx_http_fc_module: nginx side of fc-gateway (DESIGN §1, §3).
 *
 * One request is one exchange on one runner connection:
 *
 *   nginx:   REQUEST  DATA* DATA(END_STREAM)
 *   runner:  RESPONSE DATA* DATA(END_STREAM)   or   ERROR(END_STREAM)
 *
 * The module is an ngx_http_upstream client like grpc/uwsgi: the request
 * side is create_request + a body output filter that puts a DATA frame
 * header in front of each body buffer (ngx_http_fc_frames.c); the response
 * side is process_header + an input filter that hands out buffers pointing
 * into u->buffer.
 */

#ifndef _NGX_HTTP_FC_MODULE_H_INCLUDED_
#define _NGX_HTTP_FC_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "fc_proto.h"
#include "fc_limits.h"


/* idle connections kept per worker for each fc_runner address */
#define NGX_HTTP_FC_DEFAULT_KEEPALIVE  128

/*
 * Without fc_read_timeout the module waits as long as the runner may take
 * to answer: the longest queue wait, initialization and function timeout it
 * accepts, plus a margin, so that the function's own timeout decides.
 */
#define NGX_HTTP_FC_DEFAULT_READ_TIMEOUT                                      \
    ((ngx_msec_t) (FC_MAX_QUEUE_TIME_S + FC_MAX_INITIALIZATION_TIMEOUT_S      \
                   + FC_MAX_FUNCTION_TIMEOUT_S + 60) * 1000)

/* a function name from outside is logged and echoed up to this long */
#define NGX_HTTP_FC_MAX_SHOWN_VALUE    64

/* the runner's error messages are logged up to this long */
#define NGX_HTTP_FC_MAX_LOGGED_MESSAGE 1024

/* 431 Request Header Fields Too Large (RFC 6585): nginx has no name for it */
#define NGX_HTTP_FC_HEADER_FIELDS_TOO_LARGE  431


typedef struct ngx_http_fc_keepalive_pool_s  ngx_http_fc_keepalive_pool_t;
typedef struct ngx_http_fc_known_header_s    ngx_http_fc_known_header_t;


/*
 * The longest response header name ngx_http_fc_known_header_names may hold,
 * and the shortest: a name is compared four or eight bytes at a time.
 */
#define NGX_HTTP_FC_KNOWN_HEADER_MAX_LEN  32
#define NGX_HTTP_FC_KNOWN_HEADER_MIN_LEN  4


/*
 * A response header name common enough that its lowercase spelling, hash
 * and nginx's upstream handler are found once, when the configuration is
 * read: such a header in a RESPONSE costs a comparison of its name, not a
 * lowercase copy, a hash and a hash lookup (ngx_http_fc_response.c).
 */
struct ngx_http_fc_known_header_s {
    u_char                        *lowcase_key;  /* NUL-terminated */
    u_char                        *case_bits;    /* 0x20 under each letter */
    ngx_uint_t                     hash;
    ngx_http_upstream_header_t    *handler;      /* NULL: nginx has none */
    ngx_http_fc_known_header_t    *next;         /* another of this length */
};


/* one fc_set_header: the header the REQUEST frame carries instead */
typedef struct {
    ngx_str_t                      name;
    ngx_http_complex_value_t       value;     /* empty: the header is removed */
} ngx_http_fc_set_header_t;


typedef struct {
    ngx_http_upstream_conf_t       upstream;
    ngx_http_complex_value_t      *function;

    /* fc_set_header of this level, or of the nearest one that has some */
    ngx_array_t                   *set_headers;

    /* fc_read_timeout as set, or unset: then it is no deadline_ms */
    ngx_msec_t                     read_timeout;
} ngx_http_fc_loc_conf_t;


typedef struct {
    ngx_int_t                      request_id_index;
    ngx_http_upstream_srv_conf_t  *default_runner;

    ngx_int_t                      keepalive;        /* fc_keepalive */
    ngx_array_t                    keepalive_pools;  /* of pool pointers */

    /* the RESPONSE decoder's msgpack zone, cleared after each message */
    struct msgpack_zone           *zone;

    /* the REQUEST's keys, packed once */
    fc_request_keys_t              request_keys;

    /* the known response header names, by length */
    ngx_http_fc_known_header_t
                  *known_headers[NGX_HTTP_FC_KNOWN_HEADER_MAX_LEN + 1];
} ngx_http_fc_main_conf_t;


typedef enum {
    ngx_http_fc_st_response = 0,    /* waiting for RESPONSE or ERROR */
    ngx_http_fc_st_discard,         /* a response without a body: skip DATA */
    ngx_http_fc_st_body             /* passing DATA payloads on */
} ngx_http_fc_state_e;


typedef struct {
    ngx_http_request_t        *request;

    ngx_str_t                  function;
    ngx_str_t                  request_id;
    ngx_str_t                  instance;

    ngx_http_log_handler_pt    log_handler;     /* the one we wrapped */

    /* request side: the REQUEST frame, encoded once by the handler */

    ngx_buf_t                 *request_frame;
    int64_t                    request_length;  /* its content_length */
    ngx_str_t                  error_message;   /* why it was refused */

    ngx_http_event_handler_pt  body_handler;    /* nginx's body reader */

    /* request side: framing the body (ngx_http_fc_frames.c) */

    ngx_chain_t               *in;
    ngx_chain_t               *free;
    ngx_chain_t               *busy;

    /* response side */

    ngx_http_fc_state_e        state;
    fc_parser_t                parser;
    ngx_chain_t              **out;             /* tail of u->out_bufs */
    off_t                      length;          /* body left, -1: unknown */
    size_t                     rest;            /* payload left in frame */

    ngx_buf_t                 *pipe_buf;        /* fc_buffering on: the raw */
    ngx_buf_t                **pipe_shadow;     /* buffer being parsed and */
    ngx_buf_t                 *pipe_last;       /* its chain of shadows */
    ngx_buf_t                 *error_body;      /* JSON for ERROR */

    ngx_buf_t                 *tunnel_buf;      /* client bytes, one DATA frame */

    u_char                    *abort_pos;       /* ERROR after RESPONSE */
    u_char                    *abort_last;

    uint8_t                    frame_type;
    uint16_t                   frame_flags;

    unsigned                   request_sent:1;
    unsigned                   request_ends:1;  /* the frame's buffer holds
                                                   the empty last DATA */
    unsigned                   output_closed:1;
    unsigned                   output_blocked:1;
    unsigned                   response:1;
    unsigned                   cold_start:1;
    unsigned                   in_frame:1;
    unsigned                   done:1;
    unsigned                   failed:1;

    unsigned                   upgrade:1;       /* the client asks to switch */
    unsigned                   tunnel:1;        /* the function switched: 101 */
    unsigned                   tunnel_busy:1;   /* tunnel_buf is being sent */
    unsigned                   tunnel_closed:1; /* the client closed its side */
} ngx_http_fc_ctx_t;


/* ngx_http_fc_request.c */
ngx_int_t ngx_http_fc_request_frame(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx, int64_t content_length);
ngx_int_t ngx_http_fc_create_request(ngx_http_request_t *r);

/* ngx_http_fc_frames.c */
ngx_int_t ngx_http_fc_body_output_filter(void *data, ngx_chain_t *in);

/* ngx_http_fc_response.c */
ngx_int_t ngx_http_fc_process_header(ngx_http_request_t *r);
ngx_int_t ngx_http_fc_filter_init(void *data);
ngx_int_t ngx_http_fc_filter(void *data, ssize_t bytes);
ngx_int_t ngx_http_fc_pipe_filter(ngx_event_pipe_t *p, ngx_buf_t *buf);
ngx_buf_t *ngx_http_fc_error_body(ngx_http_request_t *r,
    ngx_str_t *request_id, ngx_str_t *code, ngx_str_t *message);
ngx_int_t ngx_http_fc_known_headers_init(ngx_conf_t *cf,
    ngx_http_fc_main_conf_t *fmcf);

/* ngx_http_fc_tunnel.c */
ngx_uint_t ngx_http_fc_upgrade_requested(ngx_http_request_t *r,
    int64_t content_length);
ngx_int_t ngx_http_fc_tunnel_start(ngx_http_request_t *r,
    ngx_http_fc_ctx_t *ctx);

/* ngx_http_fc_keepalive.c */
ngx_int_t ngx_http_fc_keepalive_add(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);

/* ngx_http_fc_module.c */
u_char *ngx_http_fc_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len);
ngx_int_t ngx_http_fc_escape(ngx_pool_t *pool, ngx_str_t *value, size_t max,
    ngx_str_t *shown);


extern ngx_module_t  ngx_http_fc_module;


#endif /* _NGX_HTTP_FC_MODULE_H_INCLUDED_ */
