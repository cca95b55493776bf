/*
 * _fcruntime: the native host of the python3 runtime (DESIGN §6).
 *
 * bootstrap.py imports the user's code and calls serve(); from then on this
 * file serves the instance contract in C: it accepts the runner's
 * connections on 127.0.0.1:$FC_SERVER_PORT, parses HTTP/1.1 with http_parser,
 * keeps connections alive, builds the event bytes or the WSGI environ, calls
 * the user's callable and writes the response with one sendmsg per piece.
 * Python runs only the user's code (and the small helpers of bootstrap.py
 * for the context and for error reports).  The GIL is released around every
 * system call, so with instanceConcurrency > 1 the worker threads overlap
 * their I/O and whatever the user's code does without the GIL.
 *
 * Built on the stable ABI (abi3), so any CPython at least as new as
 * Py_LIMITED_API imports the same .so: the interpreter stays the user's
 * choice.
 */
#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Limits, named. */
enum {
  kReadBufferBytes = 64 * 1024, /* one recv; also the largest request head */
  kMaxHeaders = 256,            /* header lines of one request */
  kMaxThreads = 100,            /* instanceConcurrency's own bound */
  kListenBacklog = 1024,
  kMaxIov = 64,                 /* pieces of one list response per sendmsg */
  kKeepBodyBufferBytes = 1024 * 1024, /* a larger body buffer is freed after its request */
};

typedef struct {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} header_t;

/* One runner connection. Owned by the thread that took it from epoll. */
typedef struct conn {
  int fd;
  http_parser parser;
  char rbuf[kReadBufferBytes];
  size_t rpos, rend;

  /* The request being served: head pointers into rbuf (valid until the next
   * recv), the decoded body waiting to be read. */
  const char *url;
  size_t url_len;
  header_t headers[kMaxHeaders];
  int nheaders;
  int too_many_headers;
  int head_done;
  int message_done;
  int discard_body;
  char *bbuf;
  size_t bcap, bstart, bend;
  int broken; /* read error, EOF mid-request or bad framing */
  /* The head was read by parse_runner_head, not http_parser: the body is
   * body_left more bytes (Content-Length), and keep_alive is the head's. */
  int fast;
  int keep_alive;
  size_t body_left;

  char peer[INET6_ADDRSTRLEN];
  int peer_port;
} conn_t;

/* Set by serve(). */
static PyObject *g_handler;      /* the user's callable */
static PyObject *g_make_context; /* make_context(request_id) -> context */
static PyObject *g_report_error; /* report_error(kind, type, value, tb) -> bytes */
static PyObject *g_initialize;   /* initialize(context): runs the user's initializer */
static PyObject *g_pre_stop;     /* pre_stop(context): runs the user's preStop hook, if any */
static int g_epoll = -1;
static int g_listen = -1;
static int g_threads = 1;
static int g_port;
static char g_port_digits[8];
static PyObject *g_server_port_str;

/* Interned environ keys and constant values. */
static PyObject *k_REQUEST_METHOD, *k_SCRIPT_NAME, *k_PATH_INFO, *k_QUERY_STRING, *k_CONTENT_TYPE,
    *k_CONTENT_LENGTH, *k_SERVER_NAME, *k_SERVER_PORT, *k_SERVER_PROTOCOL, *k_REMOTE_ADDR, *k_REMOTE_PORT,
    *k_wsgi_version, *k_wsgi_url_scheme, *k_wsgi_input, *k_wsgi_errors, *k_wsgi_multithread,
    *k_wsgi_multiprocess, *k_wsgi_run_once, *k_wsgi_input_terminated, *k_fc_context, *k_fc_request_uri,
    *v_empty, *v_http11, *v_http, *v_wsgi_version, *s_event, *s_http, *s_init, *s_close, *s_write;

/* The request id of the request this thread serves, for the log lines. */
static __thread PyObject *tls_request_id;

static PyObject *g_input_type, *g_start_response_type;

/* ---- socket I/O (GIL released) ------------------------------------------------ */

static ssize_t recv_some(conn_t *c, char *into, size_t len) {
  ssize_t n;
  Py_BEGIN_ALLOW_THREADS
  do {
    n = recv(c->fd, into, len, 0);
  } while (n < 0 && errno == EINTR);
  Py_END_ALLOW_THREADS
  return n;
}

/* Writes every byte of iov (modified). 0 or -1. */
static int send_all(conn_t *c, struct iovec *iov, int iovcnt) {
  int rc = 0;
  Py_BEGIN_ALLOW_THREADS
  while (iovcnt > 0) {
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)iovcnt;
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = -1;
      break;
    }
    while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  Py_END_ALLOW_THREADS
  return rc;
}

/* ---- http_parser callbacks ------------------------------------------------------ */

static int on_url(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->url && c->url + c->url_len == at) {
    c->url_len += len;
  } else {
    c->url = at;
    c->url_len = len;
  }
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->nheaders > 0) {
    header_t *last = &c->headers[c->nheaders - 1];
    if (last->value == NULL && last->name + last->name_len == at) {
      last->name_len += len;
      return 0;
    }
  }
  if (c->nheaders == kMaxHeaders) {
    c->too_many_headers = 1;
    return 0;
  }
  header_t *h = &c->headers[c->nheaders++];
  h->name = at;
  h->name_len = len;
  h->value = NULL;
  h->value_len = 0;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->nheaders == 0 || c->too_many_headers) return 0;
  header_t *h = &c->headers[c->nheaders - 1];
  if (h->value && h->value + h->value_len == at) {
    h->value_len += len;
  } else if (h->value == NULL) {
    h->value = at;
    h->value_len = len;
  }
  return 0;
}

static int on_headers_complete(http_parser *p) {
  conn_t *c = p->data;
  c->head_done = 1;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->discard_body) return 0;
  if (c->bstart > 0 && c->bstart == c->bend) c->bstart = c->bend = 0;
  if (c->bend + len > c->bcap) {
    if (c->bstart > 0) {
      memmove(c->bbuf, c->bbuf + c->bstart, c->bend - c->bstart);
      c->bend -= c->bstart;
      c->bstart = 0;
    }
    if (c->bend + len > c->bcap) {
      size_t cap = c->bcap ? c->bcap : 2 * kReadBufferBytes;
      while (cap < c->bend + len) cap *= 2;
      char *grown = realloc(c->bbuf, cap);
      if (!grown) return -1;
      c->bbuf = grown;
      c->bcap = cap;
    }
  }
  memcpy(c->bbuf + c->bend, at, len);
  c->bend += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn_t *c = p->data;
  c->message_done = 1;
  http_parser_pause(p, 1); /* the next request's bytes stay in rbuf */
  return 0;
}

static http_parser_settings g_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Runs the parser over the unparsed bytes of rbuf. 0, or -1 on bad input. */
static int feed(conn_t *c) {
  size_t avail = c->rend - c->rpos;
  if (avail == 0) return 0;
  if (c->fast) {
    if (c->message_done) return 0; /* the next request's bytes stay in rbuf */
    size_t n = avail < c->body_left ? avail : c->body_left;
    if (on_body(&c->parser, c->rbuf + c->rpos, n) < 0) return -1;
    c->rpos += n;
    c->body_left -= n;
    if (c->body_left == 0) c->message_done = 1;
    return 0;
  }
  size_t n = http_parser_execute(&c->parser, &g_settings, c->rbuf + c->rpos, avail);
  c->rpos += n;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e != HPE_OK && e != HPE_PAUSED) return -1;
  return 0;
}

static void begin_request(conn_t *c) {
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->url = NULL;
  c->url_len = 0;
  c->nheaders = 0;
  c->too_many_headers = 0;
  c->head_done = c->message_done = c->discard_body = 0;
  c->bstart = c->bend = 0;
  c->fast = 0;
}

static int should_keep_alive(conn_t *c) { return c->fast ? c->keep_alive : http_should_keep_alive(&c->parser); }

static int token_is(const char *s, size_t len, const char *lower) {
  return strlen(lower) == len && strncasecmp(s, lower, len) == 0;
}

/* The runner's own heads (runner/http_head.cc): HTTP/1.1, one header per
 * CRLF-terminated line, no folding, Content-Length or no body.  Parsed here
 * with memchr: http_parser's byte-at-a-time walk was more than half of the
 * runtime's instructions per event.  1: the head is read (c->fast), rpos at
 * the body; 0: a head this does not take (chunked, an upgrade, HTTP/1.0, a
 * partial head, anything unusual), left to http_parser from the same
 * bytes. */
static int parse_runner_head(conn_t *c) {
  const char *p = c->rbuf + c->rpos;
  const char *end = c->rbuf + c->rend;
  const char *eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol || eol - p < 14 || eol[-1] != '\r') return 0;
  const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
  if (!sp1) return 0;
  const char *version = eol - 10; /* " HTTP/1.1\r" */
  if (version <= sp1 + 1 || memcmp(version, " HTTP/1.1\r", 10) != 0) return 0;
  size_t mlen = (size_t)(sp1 - p);
  int method;
  if (mlen == 3 && memcmp(p, "GET", 3) == 0) method = HTTP_GET;
  else if (mlen == 4 && memcmp(p, "POST", 4) == 0) method = HTTP_POST;
  else if (mlen == 3 && memcmp(p, "PUT", 3) == 0) method = HTTP_PUT;
  else if (mlen == 4 && memcmp(p, "HEAD", 4) == 0) method = HTTP_HEAD;
  else if (mlen == 6 && memcmp(p, "DELETE", 6) == 0) method = HTTP_DELETE;
  else if (mlen == 5 && memcmp(p, "PATCH", 5) == 0) method = HTTP_PATCH;
  else if (mlen == 7 && memcmp(p, "OPTIONS", 7) == 0) method = HTTP_OPTIONS;
  else return 0;
  const char *url = sp1 + 1;
  size_t url_len = (size_t)(version - url);
  if (memchr(url, ' ', url_len)) return 0;

  int n = 0, keep_alive = 1, have_length = 0;
  size_t length = 0;
  p = eol + 1;
  for (;;) {
    if (p >= end) return 0; /* partial head */
    eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol || eol == p || eol[-1] != '\r') return 0;
    if (eol == p + 1) break; /* the empty line */
    if (*p == ' ' || *p == '\t' || n == kMaxHeaders) return 0;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (!colon || colon == p || colon[-1] == ' ' || colon[-1] == '\t') return 0;
    const char *v = colon + 1, *vend = eol - 1;
    while (v < vend && (*v == ' ' || *v == '\t')) v++;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
    size_t name_len = (size_t)(colon - p), value_len = (size_t)(vend - v);
    if (token_is(p, name_len, "content-length")) {
      if (have_length || value_len == 0 || value_len > 15) return 0;
      length = 0;
      for (size_t i = 0; i < value_len; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        length = length * 10 + (size_t)(v[i] - '0');
      }
      have_length = 1;
    } else if (token_is(p, name_len, "transfer-encoding") || token_is(p, name_len, "upgrade")) {
      return 0;
    } else if (token_is(p, name_len, "connection")) {
      if (token_is(v, value_len, "close")) keep_alive = 0;
      else if (!token_is(v, value_len, "keep-alive")) return 0;
    }
    header_t *h = &c->headers[n++];
    h->name = p;
    h->name_len = name_len;
    h->value = v;
    h->value_len = value_len;
    p = eol + 1;
  }
  c->url = url;
  c->url_len = url_len;
  c->nheaders = n;
  c->parser.method = (unsigned)method;
  c->head_done = 1;
  c->fast = 1;
  c->keep_alive = keep_alive;
  c->body_left = length;
  c->message_done = length == 0;
  c->rpos = (size_t)(eol + 1 - c->rbuf);
  return 1;
}

/* Reads and parses the next request head. 1: a head; 0: the runner closed
 * the connection between requests; -1: broken. */
static int read_head(conn_t *c) {
  /* The runner writes a head in one piece: the bytes of one recv usually
   * hold all of it, so they are parsed at once, without a scan for its end
   * first.  A partial head (its pointers would not survive the buffer
   * moving) is parsed again once its end is in the buffer. */
  if (c->rpos == c->rend) {
    c->rpos = c->rend = 0;
    ssize_t n = recv_some(c, c->rbuf, sizeof c->rbuf);
    if (n <= 0) return n == 0 ? 0 : -1;
    c->rend = (size_t)n;
  }
  size_t start = c->rpos;
  begin_request(c);
  if (parse_runner_head(c)) return 1;
  begin_request(c);
  if (feed(c) < 0) return -1;
  if (c->head_done) return c->too_many_headers ? -1 : 1;
  c->rpos = start;
  begin_request(c);
  size_t scanned = c->rpos;
  for (;;) {
    size_t from = scanned >= c->rpos + 3 ? scanned - 3 : c->rpos;
    if (c->rend > from && memmem(c->rbuf + from, c->rend - from, "\r\n\r\n", 4)) break;
    scanned = c->rend;
    if (c->rpos > 0) {
      memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
      c->rend -= c->rpos;
      scanned -= c->rpos;
      c->rpos = 0;
    }
    if (c->rend == sizeof c->rbuf) return -1; /* head larger than the buffer */
    ssize_t n = recv_some(c, c->rbuf + c->rend, sizeof c->rbuf - c->rend);
    if (n <= 0) return c->rend == 0 && n == 0 ? 0 : -1;
    c->rend += (size_t)n;
  }
  if (feed(c) < 0 || !c->head_done || c->too_many_headers) return -1;
  return 1;
}

/* Decodes body bytes until `want` are buffered or the body ended.
 * 0, or -1 (connection broken; the request cannot finish). */
static int fill_body(conn_t *c, size_t want) {
  while (!c->message_done && (c->discard_body || c->bend - c->bstart < want)) {
    if (c->broken) return -1;
    if (c->rpos == c->rend) {
      c->rpos = c->rend = 0;
      ssize_t n = recv_some(c, c->rbuf, sizeof c->rbuf);
      if (n <= 0) {
        c->broken = 1;
        return -1;
      }
      c->rend = (size_t)n;
    }
    if (feed(c) < 0) {
      c->broken = 1;
      return -1;
    }
  }
  return 0;
}

static int drain_body(conn_t *c) {
  c->discard_body = 1;
  c->bstart = c->bend = 0;
  return fill_body(c, 0);
}

static const header_t *find_header(conn_t *c, const char *name) {
  size_t len = strlen(name);
  for (int i = 0; i < c->nheaders; i++) {
    if (c->headers[i].name_len == len && strncasecmp(c->headers[i].name, name, len) == 0) return &c->headers[i];
  }
  return NULL;
}

static int header_is(const header_t *h, const char *value) {
  size_t len = strlen(value);
  return h && h->value_len == len && memcmp(h->value, value, len) == 0;
}

/* ---- responses --------------------------------------------------------------- */

/* The decimal digits of v, written to end at `end`; returns where they start. */
static char *decimal(char *end, size_t v) {
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return end;
}

static char *put(char *at, const char *s, size_t len) {
  memcpy(at, s, len);
  return at + len;
}

/* Every event's response: built with memcpy, not snprintf (a fifth of the
 * event path's own instructions went to formatting). */
static int send_simple(conn_t *c, const char *status_line, const char *extra_headers, const char *body,
                       size_t body_len) {
  char head[512];
  size_t status_len = strlen(status_line), extra_len = extra_headers ? strlen(extra_headers) : 0;
  if (status_len + extra_len > sizeof head - 64) return -1;
  char digits[24], *d = decimal(digits + sizeof digits, body_len);
  char *at = put(head, "HTTP/1.1 ", 9);
  at = put(at, status_line, status_len);
  at = put(at, "\r\n", 2);
  if (extra_len) at = put(at, extra_headers, extra_len);
  at = put(at, "Content-Length: ", 16);
  at = put(at, d, (size_t)(digits + sizeof digits - d));
  at = put(at, "\r\n\r\n", 4);
  struct iovec iov[2] = {{head, (size_t)(at - head)}, {(void *)body, body_len}};
  return send_all(c, iov, body_len ? 2 : 1);
}

/* Calls report_error(kind, type, value, tb) for the exception being raised;
 * returns its bytes (a new reference) or NULL (an empty body). Clears the
 * exception either way. */
static PyObject *report_error(PyObject *kind) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyObject *body = PyObject_CallFunctionObjArgs(g_report_error, kind, type ? type : Py_None,
                                                value ? value : Py_None, tb ? tb : Py_None, NULL);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  if (!body || !PyBytes_Check(body)) {
    if (!body) PyErr_Print();
    Py_XDECREF(body);
    return NULL;
  }
  return body;
}

/* A function error: x-fc-status 404 towards the runner (DESIGN §6). */
static int send_function_error(conn_t *c, PyObject *kind, const char *content_type) {
  PyObject *body = report_error(kind);
  char *data = "";
  Py_ssize_t len = 0;
  if (body) PyBytes_AsStringAndSize(body, &data, &len);
  char extra[128];
  snprintf(extra, sizeof extra, "x-fc-status: 404\r\nContent-Type: %s\r\n", content_type);
  int rc = send_simple(c, "200 OK", extra, data, (size_t)len);
  Py_XDECREF(body);
  return rc;
}

static PyObject *new_context(conn_t *c) {
  const header_t *rid = find_header(c, "x-fc-request-id");
  PyObject *id = rid ? PyUnicode_DecodeLatin1(rid->value, (Py_ssize_t)rid->value_len, NULL) : (Py_INCREF(v_empty), v_empty);
  if (!id) return NULL;
  PyObject *ctx = PyObject_CallFunctionObjArgs(g_make_context, id, NULL);
  if (ctx) {
    Py_XDECREF(tls_request_id);
    tls_request_id = id; /* owned until the request ends */
  } else {
    Py_DECREF(id);
  }
  return ctx;
}

static void end_request_id(void) {
  Py_CLEAR(tls_request_id);
}

/* ---- event invocations: POST /invoke, POST /initialize ------------------------- */

static int serve_event(conn_t *c) {
  if (fill_body(c, (size_t)-1) < 0) return -1;
  PyObject *event = PyBytes_FromStringAndSize(c->bbuf ? c->bbuf + c->bstart : "", (Py_ssize_t)(c->bend - c->bstart));
  c->bstart = c->bend = 0;
  if (!event) return -1;
  PyObject *ctx = new_context(c);
  PyObject *result = ctx ? PyObject_CallFunctionObjArgs(g_handler, event, ctx, NULL) : NULL;
  Py_DECREF(event);
  Py_XDECREF(ctx);
  int rc;
  if (!result) {
    rc = send_function_error(c, s_event, "application/json");
    end_request_id();
    return rc;
  }
  /* FC's rule: bytes unchanged, str as UTF-8, None empty, else str(result). */
  PyObject *body = NULL;
  if (PyBytes_Check(result)) {
    body = result;
    Py_INCREF(body);
  } else if (result == Py_None) {
    body = PyBytes_FromStringAndSize("", 0);
  } else if (PyUnicode_Check(result)) {
    body = PyUnicode_AsUTF8String(result);
  } else {
    PyObject *text = PyObject_Str(result);
    body = text ? PyUnicode_AsUTF8String(text) : NULL;
    Py_XDECREF(text);
  }
  Py_DECREF(result);
  if (!body) {
    rc = send_function_error(c, s_event, "application/json");
  } else {
    char *data;
    Py_ssize_t len;
    PyBytes_AsStringAndSize(body, &data, &len);
    rc = send_simple(c, "200 OK", NULL, data, (size_t)len);
    Py_DECREF(body);
  }
  end_request_id();
  return rc;
}

/* POST /initialize and GET /pre-stop: the user's hook with a context; an
 * exception is a function error carrying the traceback's last line. */
static int serve_hook(conn_t *c, PyObject *hook) {
  if (drain_body(c) < 0) return -1;
  PyObject *ctx = new_context(c);
  PyObject *result = ctx ? PyObject_CallFunctionObjArgs(hook, ctx, NULL) : NULL;
  Py_XDECREF(ctx);
  int rc;
  if (!result) {
    rc = send_function_error(c, s_init, "text/plain; charset=utf-8");
  } else {
    Py_DECREF(result);
    rc = send_simple(c, "200 OK", NULL, "", 0);
  }
  end_request_id();
  return rc;
}

/* ---- WSGI: wsgi.input ---------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  conn_t *conn; /* NULL once its request ended */
} InputObject;

static conn_t *input_conn(PyObject *self) {
  conn_t *c = ((InputObject *)self)->conn;
  if (!c) PyErr_SetString(PyExc_ValueError, "wsgi.input used after its request ended");
  return c;
}

static PyObject *take(conn_t *c, size_t n) {
  PyObject *out = PyBytes_FromStringAndSize(n ? c->bbuf + c->bstart : "", (Py_ssize_t)n);
  if (out) c->bstart += n;
  return out;
}

static int parse_size(PyObject *args, Py_ssize_t *size) {
  PyObject *arg = Py_None;
  *size = -1;
  if (!PyArg_UnpackTuple(args, "read", 0, 1, &arg)) return -1;
  if (arg != Py_None) {
    *size = PyLong_AsSsize_t(arg);
    if (*size == -1 && PyErr_Occurred()) return -1;
  }
  return 0;
}

static PyObject *body_broken(void) {
  PyErr_SetString(PyExc_OSError, "the request body ended early (connection closed or bad framing)");
  return NULL;
}

static PyObject *input_read(PyObject *self, PyObject *args) {
  Py_ssize_t size;
  conn_t *c = input_conn(self);
  if (!c || parse_size(args, &size) < 0) return NULL;
  size_t want = size < 0 ? (size_t)-1 : (size_t)size;
  if (fill_body(c, want) < 0) return body_broken();
  size_t avail = c->bend - c->bstart;
  return take(c, avail < want ? avail : want);
}

static PyObject *input_readline(PyObject *self, PyObject *args) {
  Py_ssize_t size;
  conn_t *c = input_conn(self);
  if (!c || parse_size(args, &size) < 0) return NULL;
  size_t limit = size < 0 ? (size_t)-1 : (size_t)size;
  size_t scanned = 0;
  for (;;) {
    size_t avail = c->bend - c->bstart;
    if (avail > scanned) {
      size_t upto = avail < limit ? avail : limit;
      if (upto > scanned) {
        const char *nl = memchr(c->bbuf + c->bstart + scanned, '\n', upto - scanned);
        if (nl) return take(c, (size_t)(nl - (c->bbuf + c->bstart)) + 1);
      }
      scanned = upto;
    }
    if (avail >= limit || c->message_done) return take(c, avail < limit ? avail : limit);
    if (fill_body(c, avail + 1) < 0) return body_broken();
  }
}

static PyObject *input_readlines(PyObject *self, PyObject *args) {
  Py_ssize_t hint;
  if (parse_size(args, &hint) < 0) return NULL;
  PyObject *lines = PyList_New(0);
  Py_ssize_t total = 0;
  PyObject *no_args = PyTuple_New(0);
  while (lines) {
    PyObject *line = input_readline(self, no_args);
    if (!line) {
      Py_CLEAR(lines);
      break;
    }
    Py_ssize_t len = PyBytes_Size(line);
    if (len == 0) {
      Py_DECREF(line);
      break;
    }
    int rc = PyList_Append(lines, line);
    Py_DECREF(line);
    if (rc < 0) Py_CLEAR(lines);
    total += len;
    if (hint > 0 && total >= hint) break;
  }
  Py_DECREF(no_args);
  return lines;
}

static PyObject *input_iternext(PyObject *self) {
  PyObject *no_args = PyTuple_New(0);
  PyObject *line = no_args ? input_readline(self, no_args) : NULL;
  Py_XDECREF(no_args);
  if (line && PyBytes_Size(line) == 0) {
    Py_DECREF(line);
    return NULL; /* StopIteration */
  }
  return line;
}

static PyObject *iter_self(PyObject *self) {
  Py_INCREF(self);
  return self;
}

static void plain_dealloc(PyObject *self) {
  PyTypeObject *type = Py_TYPE(self);
  freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
  tp_free(self);
  Py_DECREF(type);
}

static PyMethodDef input_methods[] = {
    {"read", input_read, METH_VARARGS, "read([size]) -> bytes"},
    {"readline", input_readline, METH_VARARGS, "readline([size]) -> bytes"},
    {"readlines", input_readlines, METH_VARARGS, "readlines([hint]) -> list of bytes"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_methods, input_methods},
    {Py_tp_iter, iter_self},
    {Py_tp_iternext, input_iternext},
    {Py_tp_dealloc, plain_dealloc},
    {Py_tp_doc, "wsgi.input: the request body, streamed from the runner connection"},
    {0, NULL},
};

static PyType_Spec input_spec = {"_fcruntime.Input", sizeof(InputObject), 0, Py_TPFLAGS_DEFAULT, input_slots};

/* ---- WSGI: start_response and the response --------------------------------------- */

typedef struct {
  PyObject_HEAD
  conn_t *conn;       /* NULL once its request ended */
  PyObject *status;   /* bytes "200 OK" */
  PyObject *headers;  /* bytes: "Name: value\r\n"... */
  int has_length;     /* the app sent Content-Length */
  int head_sent;
  int chunked;
  int no_body;        /* HEAD, 1xx, 204, 304 */
  int is_head;
  int failed;         /* a write failed: the connection is gone */
} ResponseObject;

static int valid_header_text(const char *s, Py_ssize_t len, int is_name) {
  for (Py_ssize_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r' || ch == '\n' || ch == 0) return 0;
    if (is_name && (ch == ':' || ch <= ' ' || ch >= 0x7f)) return 0;
  }
  return len > 0 || !is_name;
}

static PyObject *start_response_call(PyObject *self, PyObject *args, PyObject *kwargs) {
  ResponseObject *r = (ResponseObject *)self;
  PyObject *status, *headers, *exc_info = Py_None;
  static char *kwlist[] = {"status", "response_headers", "exc_info", NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", kwlist, &status, &headers, &exc_info)) {
    return NULL;
  }
  if (!r->conn) {
    PyErr_SetString(PyExc_RuntimeError, "start_response called after its request ended");
    return NULL;
  }
  if (exc_info != Py_None) {
    if (r->head_sent) {
      /* PEP 3333: too late to change the response; re-raise. */
      PyObject *t = NULL, *v = NULL, *tb = NULL;
      if (PyTuple_Check(exc_info) && PyTuple_Size(exc_info) == 3) {
        t = PyTuple_GetItem(exc_info, 0);
        v = PyTuple_GetItem(exc_info, 1);
        tb = PyTuple_GetItem(exc_info, 2);
        Py_XINCREF(t);
        Py_XINCREF(v);
        Py_XINCREF(tb);
        PyErr_Restore(t, v, tb);
      } else {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
      }
      return NULL;
    }
  } else if (r->status) {
    PyErr_SetString(PyExc_AssertionError, "start_response called twice without exc_info");
    return NULL;
  }
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "status must be a str such as '200 OK'");
    return NULL;
  }
  PyObject *status_bytes = PyUnicode_AsLatin1String(status);
  if (!status_bytes) return NULL;
  char *st;
  Py_ssize_t st_len;
  PyBytes_AsStringAndSize(status_bytes, &st, &st_len);
  if (st_len < 4 || st[0] < '1' || st[0] > '9' || st[1] < '0' || st[1] > '9' || st[2] < '0' || st[2] > '9' ||
      st[3] != ' ' || !valid_header_text(st, st_len, 0)) {
    Py_DECREF(status_bytes);
    PyErr_SetString(PyExc_ValueError, "status must look like '200 OK'");
    return NULL;
  }
  int code = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');

  PyObject *seq = PySequence_Fast(headers, "response_headers must be a list of (name, value) tuples");
  if (!seq) {
    Py_DECREF(status_bytes);
    return NULL;
  }
  Py_ssize_t n = PySequence_Size(seq);
  /* The header lines go straight into one buffer, then one bytes object. */
  char stack_lines[2048];
  char *lines = stack_lines;
  size_t cap = sizeof stack_lines, used = 0;
  int ok = 1;
  int has_length = 0;
  for (Py_ssize_t i = 0; ok && i < n; i++) {
    PyObject *item = PyList_Check(seq) ? PyList_GetItem(seq, i) : PyTuple_GetItem(seq, i);
    if (!PyTuple_Check(item) || PyTuple_Size(item) != 2 || !PyUnicode_Check(PyTuple_GetItem(item, 0)) ||
        !PyUnicode_Check(PyTuple_GetItem(item, 1))) {
      PyErr_SetString(PyExc_TypeError, "response_headers must be a list of (str, str) tuples");
      ok = 0;
      break;
    }
    PyObject *name = PyUnicode_AsLatin1String(PyTuple_GetItem(item, 0));
    PyObject *value = name ? PyUnicode_AsLatin1String(PyTuple_GetItem(item, 1)) : NULL;
    char *ns = NULL, *vs = NULL;
    Py_ssize_t nl = 0, vl = 0;
    if (value) {
      PyBytes_AsStringAndSize(name, &ns, &nl);
      PyBytes_AsStringAndSize(value, &vs, &vl);
    }
    if (!value || !valid_header_text(ns, nl, 1) || !valid_header_text(vs, vl, 0)) {
      if (value) PyErr_SetString(PyExc_ValueError, "a response header name or value has a forbidden character");
      Py_XDECREF(name);
      Py_XDECREF(value);
      ok = 0;
      break;
    }
    if (nl == 14 && strncasecmp(ns, "content-length", 14) == 0) has_length = 1;
    /* Hop-by-hop framing is this server's business. */
    int dropped = (nl == 17 && strncasecmp(ns, "transfer-encoding", 17) == 0) ||
                  (nl == 10 && strncasecmp(ns, "connection", 10) == 0);
    size_t line_len = (size_t)nl + 2 + (size_t)vl + 2;
    if (!dropped && used + line_len > cap) {
      size_t grown_cap = cap * 2;
      while (grown_cap < used + line_len) grown_cap *= 2;
      char *grown = lines == stack_lines ? malloc(grown_cap) : realloc(lines, grown_cap);
      if (!grown) {
        PyErr_NoMemory();
        ok = 0;
      } else {
        if (lines == stack_lines) memcpy(grown, stack_lines, used);
        lines = grown;
        cap = grown_cap;
      }
    }
    if (ok && !dropped) {
      memcpy(lines + used, ns, (size_t)nl);
      memcpy(lines + used + nl, ": ", 2);
      memcpy(lines + used + nl + 2, vs, (size_t)vl);
      memcpy(lines + used + nl + 2 + vl, "\r\n", 2);
      used += line_len;
    }
    Py_DECREF(name);
    Py_DECREF(value);
  }
  Py_DECREF(seq);
  PyObject *joined = ok ? PyBytes_FromStringAndSize(lines, (Py_ssize_t)used) : NULL;
  if (lines != stack_lines) free(lines);
  if (!joined) {
    Py_DECREF(status_bytes);
    return NULL;
  }
  Py_XDECREF(r->status);
  r->status = status_bytes;
  Py_XDECREF(r->headers);
  r->headers = joined;
  r->has_length = has_length;
  r->no_body = r->is_head || code < 200 || code == 204 || code == 304;
  return PyObject_GetAttr(self, s_write);
}

/* Sends the head (when not sent yet) and `data`.  `total` >= 0: the whole
 * body's length, known now, so Content-Length; -1: more may follow.
 * `last`: the body ends with this piece. */
static int response_send(ResponseObject *r, const char *data, size_t len, Py_ssize_t total, int last) {
  conn_t *c = r->conn;
  struct iovec iov[8];
  int n = 0;
  char head_start[16], framing[64], chunk_line[24];
  if (!r->head_sent) {
    char *st, *hd;
    Py_ssize_t st_len, hd_len;
    PyBytes_AsStringAndSize(r->status, &st, &st_len);
    PyBytes_AsStringAndSize(r->headers, &hd, &hd_len);
    memcpy(head_start, "HTTP/1.1 ", 9);
    iov[n++] = (struct iovec){head_start, 9};
    iov[n++] = (struct iovec){st, (size_t)st_len};
    iov[n++] = (struct iovec){"\r\n", 2};
    if (hd_len) iov[n++] = (struct iovec){hd, (size_t)hd_len};
    int fl;
    if (r->has_length) {
      fl = snprintf(framing, sizeof framing, "\r\n");
    } else if (total >= 0 && !(r->no_body && !r->is_head)) {
      /* The common case, without snprintf. */
      char digits[24], *d = decimal(digits + sizeof digits, (size_t)total);
      char *at = put(framing, "Content-Length: ", 16);
      at = put(at, d, (size_t)(digits + sizeof digits - d));
      at = put(at, "\r\n\r\n", 4);
      fl = (int)(at - framing);
    } else if (r->no_body) {
      fl = snprintf(framing, sizeof framing, "\r\n");
    } else {
      r->chunked = 1;
      fl = snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n\r\n");
    }
    iov[n++] = (struct iovec){framing, (size_t)fl};
    r->head_sent = 1;
  }
  if (r->no_body) {
    len = 0;
  }
  if (r->chunked) {
    if (len > 0) {
      int cl = snprintf(chunk_line, sizeof chunk_line, "%zx\r\n", len);
      iov[n++] = (struct iovec){chunk_line, (size_t)cl};
      iov[n++] = (struct iovec){(void *)data, len};
      iov[n++] = (struct iovec){last ? "\r\n0\r\n\r\n" : "\r\n", last ? 7 : 2};
    } else if (last) {
      iov[n++] = (struct iovec){"0\r\n\r\n", 5};
    }
  } else if (len > 0) {
    iov[n++] = (struct iovec){(void *)data, len};
  }
  if (n == 0) return 0;
  if (send_all(c, iov, n) < 0) {
    r->failed = 1;
    return -1;
  }
  return 0;
}

static PyObject *response_write(PyObject *self, PyObject *data) {
  ResponseObject *r = (ResponseObject *)self;
  if (!r->conn || !r->status) {
    PyErr_SetString(PyExc_RuntimeError, "write() needs start_response first, within its request");
    return NULL;
  }
  if (!PyBytes_Check(data)) {
    PyErr_SetString(PyExc_TypeError, "write() takes bytes");
    return NULL;
  }
  char *s;
  Py_ssize_t len;
  PyBytes_AsStringAndSize(data, &s, &len);
  if (len == 0) Py_RETURN_NONE;
  if (response_send(r, s, (size_t)len, -1, 0) < 0) {
    PyErr_SetString(PyExc_OSError, "the runner connection closed while writing the response");
    return NULL;
  }
  Py_RETURN_NONE;
}

static void response_dealloc(PyObject *self) {
  ResponseObject *r = (ResponseObject *)self;
  Py_CLEAR(r->status);
  Py_CLEAR(r->headers);
  plain_dealloc(self);
}

static PyMethodDef response_methods[] = {
    {"write", response_write, METH_O, "write(bytes): the legacy write callable of start_response"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot response_slots[] = {
    {Py_tp_call, start_response_call},
    {Py_tp_methods, response_methods},
    {Py_tp_dealloc, response_dealloc},
    {Py_tp_doc, "start_response of one WSGI request"},
    {0, NULL},
};

static PyType_Spec response_spec = {"_fcruntime.StartResponse", sizeof(ResponseObject), 0, Py_TPFLAGS_DEFAULT,
                                    response_slots};

/* ---- WSGI: the environ --------------------------------------------------------- */

static int set_item(PyObject *d, PyObject *key, PyObject *value) {
  if (!value) return -1;
  int rc = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  return rc;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static PyObject *latin1(const char *s, size_t len) { return PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL); }

static PyObject *build_environ(conn_t *c, PyObject *input, PyObject *ctx) {
  PyObject *env = PyDict_New();
  if (!env) return NULL;
  const char *url = c->url ? c->url : "/";
  size_t url_len = c->url ? c->url_len : 1;
  const char *q = memchr(url, '?', url_len);
  size_t path_len = q ? (size_t)(q - url) : url_len;

  /* PATH_INFO: percent-decoded bytes as latin-1 (PEP 3333). */
  char stack_path[1024];
  char *path = path_len <= sizeof stack_path ? stack_path : malloc(path_len);
  size_t pl = 0;
  if (!path) {
    Py_DECREF(env);
    return PyErr_NoMemory();
  }
  for (size_t i = 0; i < path_len; i++) {
    int hi, lo;
    if (url[i] == '%' && i + 2 < path_len && (hi = hexval(url[i + 1])) >= 0 && (lo = hexval(url[i + 2])) >= 0) {
      path[pl++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      path[pl++] = url[i];
    }
  }
  int rc = set_item(env, k_PATH_INFO, latin1(path, pl));
  if (path != stack_path) free(path);
  if (rc < 0) goto fail;

  if (set_item(env, k_REQUEST_METHOD, PyUnicode_FromString(http_method_str(c->parser.method))) < 0) goto fail;
  if (PyDict_SetItem(env, k_SCRIPT_NAME, v_empty) < 0) goto fail;
  if (set_item(env, k_QUERY_STRING, q ? latin1(q + 1, url_len - path_len - 1) : (Py_INCREF(v_empty), v_empty)) < 0)
    goto fail;
  if (PyDict_SetItem(env, k_SERVER_PROTOCOL, v_http11) < 0) goto fail;

  const header_t *client_ip = NULL, *host = NULL;
  for (int i = 0; i < c->nheaders; i++) {
    const header_t *h = &c->headers[i];
    const char *v = h->value ? h->value : "";
    if (h->name_len > 5 && strncasecmp(h->name, "x-fc-", 5) == 0) {
      /* The gateway's own headers; the client's x-fc-* were stripped. */
      if (h->name_len == 14 && strncasecmp(h->name, "x-fc-client-ip", 14) == 0) client_ip = h;
      continue;
    }
    PyObject *key;
    if (h->name_len == 12 && strncasecmp(h->name, "content-type", 12) == 0) {
      key = k_CONTENT_TYPE;
      Py_INCREF(key);
    } else if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
      key = k_CONTENT_LENGTH;
      Py_INCREF(key);
    } else {
      if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0) host = h;
      char kb[256];
      if (h->name_len + 5 > sizeof kb) continue;
      memcpy(kb, "HTTP_", 5);
      for (size_t j = 0; j < h->name_len; j++) {
        char ch = h->name[j];
        kb[5 + j] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch);
      }
      key = latin1(kb, h->name_len + 5);
      if (!key) goto fail;
    }
    PyObject *value = latin1(v, h->value_len);
    if (!value) {
      Py_DECREF(key);
      goto fail;
    }
    PyObject *prev = PyDict_GetItem(env, key); /* borrowed */
    if (prev) {
      /* Repeated headers fold into one value (cookies with "; "). */
      int cookie = h->name_len == 6 && strncasecmp(h->name, "cookie", 6) == 0;
      PyObject *folded = PyUnicode_FromFormat(cookie ? "%U; %U" : "%U, %U", prev, value);
      Py_DECREF(value);
      value = folded;
    }
    rc = set_item(env, key, value);
    Py_DECREF(key);
    if (rc < 0) goto fail;
  }

  /* SERVER_NAME / SERVER_PORT from Host. */
  const char *name = "localhost", *port = g_port_digits;
  size_t name_len = 9, port_len = strlen(g_port_digits);
  if (host && host->value_len > 0) {
    const char *hv = host->value;
    size_t hl = host->value_len;
    const char *colon = NULL;
    if (hv[0] == '[') {
      const char *close = memchr(hv, ']', hl);
      if (close && (size_t)(close - hv) + 1 < hl && close[1] == ':') colon = close + 1;
    } else {
      colon = memchr(hv, ':', hl);
    }
    name = hv;
    name_len = colon ? (size_t)(colon - hv) : hl;
    port = colon ? colon + 1 : "80";
    port_len = colon ? hl - (size_t)(colon - hv) - 1 : 2;
    if (set_item(env, k_SERVER_NAME, latin1(name, name_len)) < 0) goto fail;
    if (set_item(env, k_SERVER_PORT, latin1(port, port_len)) < 0) goto fail;
  } else {
    if (set_item(env, k_SERVER_NAME, latin1(name, name_len)) < 0) goto fail;
    if (PyDict_SetItem(env, k_SERVER_PORT, g_server_port_str) < 0) goto fail;
  }
  /* REMOTE_ADDR: the client's address when the runner passes it, else the
   * peer of this connection (the runner). */
  if (client_ip && client_ip->value_len > 0) {
    if (set_item(env, k_REMOTE_ADDR, latin1(client_ip->value, client_ip->value_len)) < 0) goto fail;
  } else {
    if (set_item(env, k_REMOTE_ADDR, PyUnicode_FromString(c->peer)) < 0) goto fail;
    char digits[8], *d = decimal(digits + sizeof digits, (size_t)c->peer_port);
    if (set_item(env, k_REMOTE_PORT, PyUnicode_FromStringAndSize(d, digits + sizeof digits - d)) < 0) goto fail;
  }

  if (PyDict_SetItem(env, k_wsgi_version, v_wsgi_version) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_url_scheme, v_http) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_input, input) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_input_terminated, Py_True) < 0) goto fail;
  PyObject *errors = PySys_GetObject("stderr"); /* borrowed */
  if (PyDict_SetItem(env, k_wsgi_errors, errors ? errors : Py_None) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_multithread, g_threads > 1 ? Py_True : Py_False) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_multiprocess, Py_True) < 0) goto fail;
  if (PyDict_SetItem(env, k_wsgi_run_once, Py_False) < 0) goto fail;
  if (PyDict_SetItem(env, k_fc_context, ctx) < 0) goto fail;
  {
    /* http://SERVER_NAME:SERVER_PORT/raw/url, put together here rather than
     * by PyUnicode_FromFormat (a third of the environ's cost). */
    char stack_uri[1024];
    size_t uri_len = 7 + name_len + 1 + port_len + url_len;
    char *uri = uri_len <= sizeof stack_uri ? stack_uri : malloc(uri_len);
    if (!uri) {
      PyErr_NoMemory();
      goto fail;
    }
    memcpy(uri, "http://", 7);
    memcpy(uri + 7, name, name_len);
    uri[7 + name_len] = ':';
    memcpy(uri + 8 + name_len, port, port_len);
    memcpy(uri + 8 + name_len + port_len, url, url_len);
    rc = set_item(env, k_fc_request_uri, latin1(uri, uri_len));
    if (uri != stack_uri) free(uri);
    if (rc < 0) goto fail;
  }
  return env;
fail:
  Py_DECREF(env);
  return NULL;
}

/* ---- WSGI: one request ---------------------------------------------------------- */

static void call_close(PyObject *result) {
  /* A list or tuple (most apps' result) has no close(): asking would make
   * and clear an AttributeError per request. */
  if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) return;
  PyObject *close = PyObject_GetAttr(result, s_close);
  if (!close) {
    PyErr_Clear();
    return;
  }
  PyObject *r = PyObject_CallObject(close, NULL);
  Py_DECREF(close);
  if (!r) {
    PyObject *none = report_error(s_http);
    Py_XDECREF(none);
  }
  Py_XDECREF(r);
}

/* Writes the app's result. 0, or -1 after an error was reported (the
 * caller answers 500 when nothing was sent yet). */
static int write_result(ResponseObject *r, PyObject *result) {
  if (PyList_Check(result) || PyTuple_Check(result)) {
    /* The common case, `return [body]`: one sendmsg with Content-Length. */
    Py_ssize_t n = PySequence_Size(result);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *item = PyList_Check(result) ? PyList_GetItem(result, i) : PyTuple_GetItem(result, i);
      if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "a WSGI response iterable must yield bytes");
        return -1;
      }
      total += PyBytes_Size(item);
    }
    if (!r->status) {
      PyErr_SetString(PyExc_RuntimeError, "the WSGI app returned without calling start_response");
      return -1;
    }
    if (n == 1 || n == 0) {
      char *s = "";
      Py_ssize_t len = 0;
      if (n == 1) {
        PyObject *item = PyList_Check(result) ? PyList_GetItem(result, 0) : PyTuple_GetItem(result, 0);
        PyBytes_AsStringAndSize(item, &s, &len);
      }
      return response_send(r, s, (size_t)len, r->head_sent ? -1 : total, 1);
    }
    Py_ssize_t known = r->head_sent ? -1 : total;
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *item = PyList_Check(result) ? PyList_GetItem(result, i) : PyTuple_GetItem(result, i);
      char *s;
      Py_ssize_t len;
      PyBytes_AsStringAndSize(item, &s, &len);
      if (len == 0 && i + 1 < n) continue;
      if (response_send(r, s, (size_t)len, known, i + 1 == n) < 0) return 0;
    }
    return 0;
  }
  PyObject *it = PyObject_GetIter(result);
  if (!it) return -1;
  for (;;) {
    PyObject *item = PyIter_Next(it);
    if (!item) break;
    if (!PyBytes_Check(item)) {
      Py_DECREF(item);
      Py_DECREF(it);
      PyErr_SetString(PyExc_TypeError, "a WSGI response iterable must yield bytes");
      return -1;
    }
    char *s;
    Py_ssize_t len;
    PyBytes_AsStringAndSize(item, &s, &len);
    if (len > 0) {
      if (!r->status) {
        Py_DECREF(item);
        Py_DECREF(it);
        PyErr_SetString(PyExc_RuntimeError, "the WSGI app yielded a body before calling start_response");
        return -1;
      }
      int rc = response_send(r, s, (size_t)len, -1, 0);
      Py_DECREF(item);
      if (rc < 0) {
        Py_DECREF(it);
        return 0;
      }
    } else {
      Py_DECREF(item);
    }
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) return -1;
  if (!r->status) {
    PyErr_SetString(PyExc_RuntimeError, "the WSGI app returned without calling start_response");
    return -1;
  }
  return response_send(r, "", 0, r->head_sent ? -1 : 0, 1);
}

/* 1: keep the connection; 0: close it. */
static int serve_wsgi(conn_t *c) {
  InputObject *input = PyObject_New(InputObject, (PyTypeObject *)g_input_type);
  ResponseObject *resp = input ? PyObject_New(ResponseObject, (PyTypeObject *)g_start_response_type) : NULL;
  if (!resp) {
    Py_XDECREF(input);
    PyErr_Print();
    return 0;
  }
  input->conn = c;
  resp->conn = c;
  resp->status = resp->headers = NULL;
  resp->has_length = resp->head_sent = resp->chunked = resp->no_body = resp->failed = 0;
  resp->is_head = c->parser.method == HTTP_HEAD;

  PyObject *ctx = new_context(c);
  PyObject *env = ctx ? build_environ(c, (PyObject *)input, ctx) : NULL;
  Py_XDECREF(ctx);
  PyObject *result = env ? PyObject_CallFunctionObjArgs(g_handler, env, (PyObject *)resp, NULL) : NULL;
  Py_XDECREF(env);
  int failed = 0;
  if (!result) {
    failed = 1;
  } else {
    if (write_result(resp, result) < 0) failed = 1;
    if (failed) {
      /* Report this error first; close() may raise its own. */
      PyObject *none = report_error(s_http);
      Py_XDECREF(none);
      failed = 2;
    }
    call_close(result);
    Py_DECREF(result);
  }
  if (failed == 1) {
    PyObject *none = report_error(s_http);
    Py_XDECREF(none);
  }
  int keep = !resp->failed && !c->broken;
  if (failed && keep) {
    if (resp->head_sent) {
      keep = 0; /* a response cut short: closing tells the runner */
    } else {
      static const char body[] = "Internal Server Error\n";
      keep = send_simple(c, "500 Internal Server Error", "Content-Type: text/plain\r\n", body, sizeof body - 1) == 0;
    }
  } else if (keep && !resp->head_sent) {
    keep = 0;
  }
  input->conn = NULL;
  resp->conn = NULL;
  Py_DECREF(input);
  Py_DECREF(resp);
  end_request_id();
  return keep;
}

/* ---- connections and workers ------------------------------------------------------- */

/* Serves requests while bytes are buffered. 1: idle, keep; 0: close. */
static int serve_connection(conn_t *c) {
  for (;;) {
    int rc = read_head(c);
    if (rc <= 0) {
      if (rc < 0 && !PyErr_Occurred()) {
        static const char body[] = "bad request\n";
        send_simple(c, "400 Bad Request", "Connection: close\r\n", body, sizeof body - 1);
      }
      return 0;
    }
    const header_t *path = find_header(c, "x-fc-control-path");
    int keep;
    if (header_is(path, "/invoke")) {
      keep = serve_event(c) == 0;
    } else if (header_is(path, "/initialize")) {
      keep = serve_hook(c, g_initialize) == 0;
    } else if (header_is(path, "/pre-stop")) {
      keep = serve_hook(c, g_pre_stop) == 0;
    } else if (header_is(path, "/pre-freeze")) {
      keep = drain_body(c) == 0 && send_simple(c, "200 OK", NULL, "", 0) == 0;
    } else {
      keep = serve_wsgi(c);
    }
    if (keep && !c->message_done) keep = drain_body(c) == 0;
    if (keep && !should_keep_alive(c)) keep = 0;
    if (c->bcap > kKeepBodyBufferBytes) {
      free(c->bbuf);
      c->bbuf = NULL;
      c->bcap = 0;
    }
    c->bstart = c->bend = 0;
    if (!keep) return 0;
    if (c->rpos == c->rend) return 1;
  }
}

static void close_conn(conn_t *c) {
  epoll_ctl(g_epoll, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->bbuf);
  free(c);
}

static void accept_all(void) {
  for (;;) {
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    int fd = accept4(g_listen, (struct sockaddr *)&addr, &alen, SOCK_CLOEXEC);
    if (fd < 0) break; /* EAGAIN (another worker took it) or a transient error */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    if (addr.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&addr;
      inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
      c->peer_port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
      inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
      c->peer_port = ntohs(a->sin6_port);
    }
    struct epoll_event ev = {.events = EPOLLIN | (g_threads > 1 ? EPOLLONESHOT : 0), .data.ptr = c};
    if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      free(c);
    }
  }
}

/* The listener's epoll data: a sentinel no connection can have. */
static char g_listen_tag;

/* One worker: takes whichever connection has a request (or the listener)
 * from the shared epoll.  With several workers every registration is
 * one-shot, so a connection belongs to one worker at a time and is re-armed
 * when its request is done.  Returns only with a Python exception set. */
static PyObject *worker_loop(void) {
  for (;;) {
    struct epoll_event ev;
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(g_epoll, &ev, 1, -1);
    Py_END_ALLOW_THREADS
    if (n < 0) {
      if (errno == EINTR) {
        if (PyErr_CheckSignals() < 0) return NULL;
        continue;
      }
      return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (n == 0) continue;
    if (ev.data.ptr == &g_listen_tag) {
      accept_all();
      if (g_threads > 1) {
        struct epoll_event again = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = &g_listen_tag};
        epoll_ctl(g_epoll, EPOLL_CTL_MOD, g_listen, &again);
      }
      continue;
    }
    conn_t *c = ev.data.ptr;
    if (!serve_connection(c)) {
      close_conn(c);
    } else if (g_threads > 1) {
      struct epoll_event again = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = c};
      if (epoll_ctl(g_epoll, EPOLL_CTL_MOD, c->fd, &again) < 0) close_conn(c);
    }
    if (PyErr_Occurred()) PyErr_Print();
  }
}

static void *worker_thread(void *arg) {
  (void)arg;
  PyGILState_STATE st = PyGILState_Ensure();
  worker_loop();
  PyErr_Print();
  PyGILState_Release(st);
  return NULL;
}

static int open_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, kListenBacklog) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static PyObject *fc_serve(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"port", "threads", "handler", "make_context", "report_error", "initialize", "pre_stop",
                           NULL};
  int port, threads;
  PyObject *handler, *make_context, *report, *initialize, *pre_stop;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iiOOOOO:serve", kwlist, &port, &threads, &handler, &make_context,
                                   &report, &initialize, &pre_stop)) {
    return NULL;
  }
  if (g_epoll >= 0) {
    PyErr_SetString(PyExc_RuntimeError, "serve() runs once per process");
    return NULL;
  }
  if (threads < 1) threads = 1;
  if (threads > kMaxThreads) threads = kMaxThreads;
  Py_INCREF(handler);
  Py_INCREF(make_context);
  Py_INCREF(report);
  Py_INCREF(initialize);
  Py_INCREF(pre_stop);
  g_pre_stop = pre_stop;
  g_handler = handler;
  g_make_context = make_context;
  g_report_error = report;
  g_initialize = initialize;
  g_threads = threads;
  g_port = port;
  g_server_port_str = PyUnicode_FromFormat("%d", port);
  snprintf(g_port_digits, sizeof g_port_digits, "%d", port);

  g_listen = open_listener(port);
  if (g_listen < 0) return PyErr_SetFromErrno(PyExc_OSError);
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) return PyErr_SetFromErrno(PyExc_OSError);
  struct epoll_event ev = {.events = EPOLLIN | (threads > 1 ? EPOLLONESHOT : 0), .data.ptr = &g_listen_tag};
  if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, g_listen, &ev) < 0) return PyErr_SetFromErrno(PyExc_OSError);

  for (int i = 1; i < threads; i++) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, worker_thread, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      errno = rc;
      return PyErr_SetFromErrno(PyExc_OSError);
    }
  }
  return worker_loop();
}

static PyObject *fc_request_id(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  PyObject *id = tls_request_id ? tls_request_id : v_empty;
  Py_INCREF(id);
  return id;
}

static PyMethodDef fc_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))fc_serve, METH_VARARGS | METH_KEYWORDS,
     "serve(port, threads, handler, make_context, report_error, initialize, pre_stop): serve the instance "
     "contract "
     "forever"},
    {"request_id", fc_request_id, METH_NOARGS, "request_id() -> the request id this thread serves, or ''"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fc_module = {PyModuleDef_HEAD_INIT, "_fcruntime",
                                       "The native host of fc-gateway's python3 runtime.", -1, fc_methods,
                                       NULL, NULL, NULL, NULL};

static PyObject *intern(const char *s) { return PyUnicode_InternFromString(s); }

PyMODINIT_FUNC PyInit__fcruntime(void) {
  PyObject *m = PyModule_Create(&fc_module);
  if (!m) return NULL;
  k_REQUEST_METHOD = intern("REQUEST_METHOD");
  k_SCRIPT_NAME = intern("SCRIPT_NAME");
  k_PATH_INFO = intern("PATH_INFO");
  k_QUERY_STRING = intern("QUERY_STRING");
  k_CONTENT_TYPE = intern("CONTENT_TYPE");
  k_CONTENT_LENGTH = intern("CONTENT_LENGTH");
  k_SERVER_NAME = intern("SERVER_NAME");
  k_SERVER_PORT = intern("SERVER_PORT");
  k_SERVER_PROTOCOL = intern("SERVER_PROTOCOL");
  k_REMOTE_ADDR = intern("REMOTE_ADDR");
  k_REMOTE_PORT = intern("REMOTE_PORT");
  k_wsgi_version = intern("wsgi.version");
  k_wsgi_url_scheme = intern("wsgi.url_scheme");
  k_wsgi_input = intern("wsgi.input");
  k_wsgi_errors = intern("wsgi.errors");
  k_wsgi_multithread = intern("wsgi.multithread");
  k_wsgi_multiprocess = intern("wsgi.multiprocess");
  k_wsgi_run_once = intern("wsgi.run_once");
  k_wsgi_input_terminated = intern("wsgi.input_terminated");
  k_fc_context = intern("fc.context");
  k_fc_request_uri = intern("fc.request_uri");
  v_empty = intern("");
  v_http11 = intern("HTTP/1.1");
  v_http = intern("http");
  v_wsgi_version = Py_BuildValue("(ii)", 1, 0);
  s_event = intern("event");
  s_http = intern("http");
  s_init = intern("init");
  s_close = intern("close");
  s_write = intern("write");
  g_input_type = PyType_FromSpec(&input_spec);
  g_start_response_type = PyType_FromSpec(&response_spec);
  if (!g_input_type || !g_start_response_type || !v_wsgi_version) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
