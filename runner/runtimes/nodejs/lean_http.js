'use strict';
// The nodejs runtime's own HTTP/1.1 server for FC-style handlers
// (req, resp, context) and event handlers.
//
// Why not node's http: its IncomingMessage/ServerResponse machinery (llhttp
// callbacks into JS, the header object, the OutgoingMessage stream, the
// chunked writer) cost about as much CPU per request as the runner and the
// front nginx together (tests/bench/node.sh's CPU table), and the only client
// of a built-in runtime is the runner, which sends well-formed HTTP/1.1 (one
// request at a time per connection, Content-Length or chunked bodies).  So
// this server reads the head with one indexOf, gives FC's req (a Readable of
// the body) and resp (FC's methods plus the usual Node ones), and writes a
// small response's head and body with one write.
//
// Plain Node (req, res) handlers (Express) need node's real objects: they
// keep http.createServer (bootstrap.js).

const {EventEmitter} = require('events');
const {Readable} = require('stream');
const http = require('http');
const net = require('net');
const fc = require('./fc');

// The runner sends FC's headers plus the client's: nginx allows up to
// 4 x 8 KiB of request headers by default.
const kMaxHeaderBytes = 64 * 1024;
// A chunk-size line: hex digits and chunk extensions the runner never sends.
const kMaxChunkLineBytes = 1024;
// A response body up to this size is copied next to its head and sent with
// one write; a larger one is written after the head (no copy).
const kCoalesceBodyBytes = 16 * 1024;

const kHead = 0;       // waiting for a request head
const kLength = 1;     // a Content-Length body
const kChunkSize = 2;  // a chunked body: the chunk-size line
const kChunkData = 3;
const kChunkEnd = 4;   // the CRLF after a chunk's data
const kTrailers = 5;
const kClosed = 6;

const kCrlfCrlf = Buffer.from('\r\n\r\n', 'latin1');

// Header values node's http would refuse to send (CR, LF, NUL, other
// controls): a handler's header must not split the response.
const kInvalidValue = /[^\t\x20-\x7e\x80-\xff]/;
const kToken = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;

// node's rules for repeated request headers (IncomingMessage#headers).
const kFirstWins = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

function buildHeaders(raw) {
  const out = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    const prev = out[name];
    if (prev === undefined) {
      out[name] = name === 'set-cookie' ? [value] : value;
    } else if (name === 'set-cookie') {
      prev.push(value);
    } else if (!kFirstWins.has(name)) {
      out[name] = prev + (name === 'cookie' ? '; ' : ', ') + value;
    }
  }
  return out;
}

function abortedError() {
  const err = new Error('aborted');
  err.code = 'ECONNRESET';
  return err;
}

// The request: a Readable of the body with the fields of node's
// IncomingMessage that handlers use, and FC's (from `fields`, shared with
// bootstrap's FcRequest).
class LeanRequest extends Readable {
  constructor(conn, method, url, httpVersion, rawHeaders) {
    super();
    this.method = method;
    this.url = url;
    this.httpVersion = httpVersion;
    this.httpVersionMajor = 1;
    this.httpVersionMinor = httpVersion === '1.0' ? 0 : 1;
    this.rawHeaders = rawHeaders;
    this.rawTrailers = [];
    this.trailers = {};
    this.complete = false;
    this.aborted = false;
    this.socket = conn.socket;
    this.fcContext = undefined;
    this._conn = conn;
    this._headers = null;
  }
  get headers() {
    if (this._headers === null) this._headers = buildHeaders(this.rawHeaders);
    return this._headers;
  }
  set headers(value) { this._headers = value; }
  get connection() { return this.socket; }
  _read() { this._conn.bodyWanted(); }
  setTimeout(ms, callback) {
    if (callback) this.on('timeout', callback);
    return this;
  }
}
fc.defineRequestFields(LeanRequest.prototype);

function byteLengthOf(chunk, encoding) {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
}

function headersSentError() {
  const err = new Error('Cannot set headers after they are sent to the client');
  err.code = 'ERR_HTTP_HEADERS_SENT';
  return err;
}

function checkHeader(name, value) {
  if (typeof name !== 'string' || !kToken.test(name)) {
    const err = new TypeError(`Header name must be a valid HTTP token ["${name}"]`);
    err.code = 'ERR_INVALID_HTTP_TOKEN';
    throw err;
  }
  if (value === undefined) {
    const err = new TypeError(`Invalid value "undefined" for header "${name}"`);
    err.code = 'ERR_HTTP_INVALID_HEADER_VALUE';
    throw err;
  }
  const values = Array.isArray(value) ? value : [value];
  for (const v of values) {
    if (kInvalidValue.test(String(v))) {
      const err = new TypeError(`Invalid character in header content ["${name}"]`);
      err.code = 'ERR_INVALID_CHAR';
      throw err;
    }
  }
}

// The response: FC's setStatusCode / setHeader / deleteHeader / send, and
// node's statusCode, writeHead, write, end, getHeader... so a handler
// written against ServerResponse keeps working.  An EventEmitter with
// write/end is a pipe destination (send(stream) pipes into it).
class LeanResponse extends EventEmitter {
  constructor(conn, req, isHead) {
    super();
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.headersSent = false;
    this.finished = false;
    this.writableEnded = false;
    this.writableFinished = false;
    this.sendDate = false;
    this.req = req;
    this.socket = conn.socket;
    this._conn = conn;
    this._isHead = isHead;
    this._fields = null;  // lower-case name -> [name, value]
    this._chunked = false;
    this._noBody = false;
    this._waitingDrain = false;
  }
  get connection() { return this.socket; }
  get writable() { return !this.writableEnded && !this._conn.destroyed; }
  get writableLength() { return this.socket.writableLength; }
  get writableNeedDrain() { return this.socket.writableNeedDrain; }

  setStatusCode(code) {
    this.statusCode = code;
    return this;
  }
  setHeader(name, value) {
    if (this.headersSent) throw headersSentError();
    checkHeader(name, value);
    if (this._fields === null) this._fields = Object.create(null);
    this._fields[name.toLowerCase()] = [name, value];
    return this;
  }
  appendHeader(name, value) {
    const prev = this.getHeader(name);
    if (prev === undefined) return this.setHeader(name, value);
    return this.setHeader(name, [].concat(prev, value));
  }
  getHeader(name) {
    const field = this._fields === null ? undefined : this._fields[String(name).toLowerCase()];
    return field === undefined ? undefined : field[1];
  }
  getHeaders() {
    const out = Object.create(null);
    if (this._fields !== null) for (const key in this._fields) out[key] = this._fields[key][1];
    return out;
  }
  getHeaderNames() { return this._fields === null ? [] : Object.keys(this._fields); }
  hasHeader(name) { return this.getHeader(name) !== undefined; }
  removeHeader(name) {
    if (this.headersSent) throw headersSentError();
    if (this._fields !== null) delete this._fields[String(name).toLowerCase()];
  }
  deleteHeader(name) {
    this.removeHeader(name);
    return this;
  }
  writeHead(statusCode, reason, headers) {
    if (this.headersSent) throw headersSentError();
    if (typeof reason !== 'string') {
      headers = reason;
      reason = undefined;
    }
    this.statusCode = statusCode;
    if (reason !== undefined) this.statusMessage = reason;
    if (Array.isArray(headers)) {
      for (let i = 0; i < headers.length; i += 1) {
        if (Array.isArray(headers[i])) this.appendHeader(headers[i][0], headers[i][1]);
        else this.appendHeader(headers[i], headers[++i]);  // flat [name, value, ...]
      }
    } else if (headers) {
      for (const name of Object.keys(headers)) this.setHeader(name, headers[name]);
    }
    return this;
  }
  flushHeaders() {
    if (!this.headersSent) this.socket.write(this._head(-1), 'latin1');
  }

  // The head; bodyLength -1: not known yet (chunked unless the handler set
  // Content-Length or Transfer-Encoding).
  _head(bodyLength) {
    const code = this.statusCode | 0;
    if (code < 100 || code > 999) {
      const err = new RangeError(`Invalid status code: ${this.statusCode}`);
      err.code = 'ERR_HTTP_INVALID_STATUS_CODE';
      throw err;
    }
    let head = `HTTP/1.1 ${code} ${this.statusMessage || http.STATUS_CODES[code] || 'unknown'}\r\n`;
    let hasLength = false;
    let encoding;
    const fields = this._fields;
    if (fields !== null) {
      for (const key in fields) {
        const [name, value] = fields[key];
        if (key === 'content-length') hasLength = true;
        else if (key === 'transfer-encoding') encoding = String(value);
        if (Array.isArray(value)) {
          for (const v of value) head += `${name}: ${v}\r\n`;
        } else {
          head += `${name}: ${value}\r\n`;
        }
      }
    }
    this._noBody = this._isHead || code === 204 || code === 304 || code < 200;
    if (encoding !== undefined) {
      this._chunked = /(?:^|,)\s*chunked\s*$/i.test(encoding) && !this._noBody;
    } else if (!hasLength && !(code === 204 || code === 304 || code < 200)) {
      if (bodyLength >= 0) {
        head += `content-length: ${bodyLength}\r\n`;
      } else if (!this._isHead) {
        head += 'transfer-encoding: chunked\r\n';
        this._chunked = true;
      }
    }
    if (this._conn.closeAfterResponse) head += 'connection: close\r\n';
    this.headersSent = true;
    return head + '\r\n';
  }

  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.writableEnded) {
      const err = new Error('write after end');
      err.code = 'ERR_STREAM_WRITE_AFTER_END';
      process.nextTick(() => this.emit('error', err));
      return false;
    }
    if (!this.headersSent) this.socket.write(this._head(-1), 'latin1');
    return this._writeBody(chunk, encoding, callback);
  }

  _writeBody(chunk, encoding, callback) {
    if (chunk === undefined || chunk === null || this._noBody || this._conn.destroyed) {
      if (callback) process.nextTick(callback);
      return true;
    }
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw new TypeError('The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
    }
    const socket = this.socket;
    let more;
    if (this._chunked) {
      const length = byteLengthOf(chunk, encoding);
      if (length === 0) {
        if (callback) process.nextTick(callback);
        return true;
      }
      socket.cork();
      socket.write(`${length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk, encoding);
      more = socket.write('\r\n', 'latin1', callback);
      socket.uncork();
    } else {
      more = socket.write(chunk, encoding, callback);
    }
    if (!more && !this._waitingDrain) {
      this._waitingDrain = true;
      socket.once('drain', () => {
        this._waitingDrain = false;
        this.emit('drain');
      });
    }
    return more;
  }

  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.writableEnded) {
      if (callback) process.nextTick(callback);
      return this;
    }
    const conn = this._conn;
    if (conn.destroyed) {
      this.writableEnded = true;
      this.finished = true;
      return this;
    }
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw new TypeError('The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
    }
    const socket = this.socket;
    if (!this.headersSent) {
      // The whole response is known: its length goes in the head, and a
      // small body shares the head's write.
      const length = chunk === undefined || chunk === null ? 0 : byteLengthOf(chunk, encoding);
      const head = this._head(length);
      if (length === 0 || this._noBody) {
        socket.write(head, 'latin1', callback);
      } else if (length <= kCoalesceBodyBytes) {
        const out = Buffer.allocUnsafe(head.length + length);
        out.latin1Write(head, 0);
        if (typeof chunk === 'string') out.write(chunk, head.length, length, encoding);
        else out.set(chunk, head.length);
        socket.write(out, callback);
      } else {
        socket.cork();
        socket.write(head, 'latin1');
        socket.write(chunk, encoding, callback);
        socket.uncork();
      }
    } else {
      if (chunk !== undefined && chunk !== null) this._writeBody(chunk, encoding);
      if (this._chunked) socket.write('0\r\n\r\n', 'latin1', callback);
      else if (callback) process.nextTick(callback);
    }
    this.writableEnded = true;
    this.finished = true;
    conn.responseEnded(this);
    process.nextTick(emitFinish, this);
    return this;
  }

  send(body) {
    fc.sendBody(this, body);
  }


  // The response cut short: the runner sees the connection close.
  destroy(err) {
    this._conn.destroy(err);
    return this;
  }
  setTimeout(ms, callback) {
    if (callback) this.on('timeout', callback);
    return this;
  }
  // node's ServerResponse methods a handler may call and that mean nothing
  // here.
  writeContinue() {}
  addTrailers() {}
}

function emitFinish(res) {
  res.writableFinished = true;
  res.emit('finish');
  res.emit('close');
}

// One runner connection: parses request heads and bodies, one request at a
// time (the runner sends the next only after the response).
class LeanConnection {
  constructor(socket, onRequest) {
    this.socket = socket;
    this.onRequest = onRequest;
    this.pending = null;    // bytes not parsed yet
    this.scanned = 0;       // of pending, bytes known to hold no head end
    this.state = kHead;
    this.remaining = 0;     // of the Content-Length body or the chunk
    this.req = null;        // body still arriving
    this.res = null;        // response not ended
    this.discardBody = false;  // the response ended first: the rest of the body is dropped
    this.pausedForBody = false;
    this.closeAfterResponse = false;
    this.parsing = false;
    this.destroyed = false;
    socket.on('data', (data) => this.onData(data));
    socket.on('error', () => this.onClose());  // ECONNRESET from the runner: 'close' follows
    socket.on('close', () => this.onClose());
  }

  onData(data) {
    if (this.pending === null) {
      this.pending = data;
    } else {
      this.pending = Buffer.concat([this.pending, data]);
    }
    this.parse();
  }

  parse() {
    if (this.parsing) return;
    this.parsing = true;
    try {
      while (this.pending !== null && !this.destroyed) {
        if (!this.step()) break;
      }
    } finally {
      this.parsing = false;
    }
  }

  take(n) {
    const buf = this.pending;
    if (n >= buf.length) {
      this.pending = null;
      return buf;
    }
    this.pending = buf.subarray(n);
    return buf.subarray(0, n);
  }

  // One parsing step over this.pending; false: wait for more bytes or for
  // the response.
  step() {
    const buf = this.pending;
    switch (this.state) {
      case kHead: {
        if (this.res !== null) {
          // A pipelined request (the runner does not send these): it waits
          // for the response, and its bytes stay in the socket.
          this.socket.pause();
          return false;
        }
        const at = buf.indexOf(kCrlfCrlf, this.scanned);
        if (at < 0) {
          if (buf.length > kMaxHeaderBytes) {
            this.fail('431 Request Header Fields Too Large');
            return false;
          }
          this.scanned = buf.length > 3 ? buf.length - 3 : 0;
          return false;
        }
        if (at > kMaxHeaderBytes) {
          this.fail('431 Request Header Fields Too Large');
          return false;
        }
        this.scanned = 0;
        const head = buf.latin1Slice(0, at);
        this.take(at + 4);
        return this.beginRequest(head);
      }
      case kLength: {
        const data = this.take(this.remaining);
        this.remaining -= data.length;
        this.pushBody(data);
        if (this.remaining === 0) this.endBody();
        return true;
      }
      case kChunkSize: {
        const eol = buf.indexOf('\r\n', 0, 'latin1');
        if (eol < 0) {
          if (buf.length > kMaxChunkLineBytes) this.fail('400 Bad Request');
          return false;
        }
        const line = buf.latin1Slice(0, eol);
        const semi = line.indexOf(';');
        const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
          this.fail('400 Bad Request');
          return false;
        }
        this.take(eol + 2);
        this.remaining = parseInt(hex, 16);
        this.state = this.remaining === 0 ? kTrailers : kChunkData;
        return true;
      }
      case kChunkData: {
        const data = this.take(this.remaining);
        this.remaining -= data.length;
        this.pushBody(data);
        if (this.remaining === 0) this.state = kChunkEnd;
        return true;
      }
      case kChunkEnd: {
        if (buf.length < 2) return false;
        if (buf[0] !== 13 || buf[1] !== 10) {
          this.fail('400 Bad Request');
          return false;
        }
        this.take(2);
        this.state = kChunkSize;
        return true;
      }
      case kTrailers: {
        const eol = buf.indexOf('\r\n', 0, 'latin1');
        if (eol < 0) {
          if (buf.length > kMaxHeaderBytes) this.fail('431 Request Header Fields Too Large');
          return false;
        }
        this.take(eol + 2);
        if (eol === 0) this.endBody();  // the empty line after the trailers
        return true;
      }
      default:
        this.pending = null;
        return false;
    }
  }

  beginRequest(head) {
    let eol = head.indexOf('\r\n');
    const line = eol < 0 ? head : head.slice(0, eol);
    const sp1 = line.indexOf(' ');
    const sp2 = line.lastIndexOf(' ');
    const version = line.slice(sp2 + 1);
    if (sp1 <= 0 || sp2 <= sp1 + 1 || (version !== 'HTTP/1.1' && version !== 'HTTP/1.0')) {
      this.fail('400 Bad Request');
      return false;
    }
    const method = line.slice(0, sp1);
    const url = line.slice(sp1 + 1, sp2);
    const raw = [];
    let contentLength = -1;
    let chunked = false;
    let close = version === 'HTTP/1.0';
    let pos = eol + 2;
    while (eol >= 0) {
      eol = head.indexOf('\r\n', pos);
      const end = eol < 0 ? head.length : eol;
      const colon = head.indexOf(':', pos);
      if (colon <= pos || colon > end) {
        this.fail('400 Bad Request');
        return false;
      }
      const name = head.slice(pos, colon);
      const value = head.slice(colon + 1, end).trim();
      raw.push(name, value);
      // Only the framing headers matter to the parser; the length test
      // spares the lower-casing of every other name.
      const n = name.length;
      if (n === 14 && name.toLowerCase() === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (contentLength >= 0 && Number(value) !== contentLength)) {
          this.fail('400 Bad Request');
          return false;
        }
        contentLength = Number(value);
      } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') {
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        if (!chunked) {
          this.fail('501 Not Implemented');
          return false;
        }
      } else if (n === 10 && name.toLowerCase() === 'connection') {
        const v = value.toLowerCase();
        if (v.includes('close') || v.includes('upgrade')) close = true;
        else if (v.includes('keep-alive')) close = false;
      }
      pos = end + 2;
    }
    this.closeAfterResponse = close;
    const req = new LeanRequest(this, method, url, version.slice(5), raw);
    const res = new LeanResponse(this, req, method === 'HEAD');
    this.res = res;
    this.req = req;
    this.discardBody = false;
    if (chunked) {
      this.state = kChunkSize;
    } else if (contentLength > 0) {
      this.state = kLength;
      this.remaining = contentLength;
    } else {
      this.endBody();
    }
    this.onRequest(req, res);
    return true;
  }

  pushBody(data) {
    if (this.discardBody || data.length === 0) return;
    // A body the handler reads slower than it comes: the socket waits.
    if (!this.req.push(data) && !this.pausedForBody) {
      this.pausedForBody = true;
      this.socket.pause();
    }
  }

  bodyWanted() {
    if (this.pausedForBody) {
      this.pausedForBody = false;
      this.socket.resume();
    }
  }

  endBody() {
    const req = this.req;
    this.req = null;
    this.state = kHead;
    if (!this.discardBody) {
      req.complete = true;
      req.push(null);
    }
    this.discardBody = false;
    if (this.res === null) this.requestDone();
  }

  responseEnded(res) {
    if (this.res !== res) return;
    this.res = null;
    if (this.req !== null) {
      // The handler answered without reading all of the body: the rest is
      // read and dropped so that the next request's head is found.
      this.discardBody = true;
      if (this.pausedForBody) this.bodyWanted();
      return;
    }
    this.requestDone();
  }

  // Request and response are both done.
  requestDone() {
    if (this.closeAfterResponse) {
      this.socket.end();
      this.state = kClosed;
      this.pending = null;
      return;
    }
    if (this.pending !== null) {
      this.socket.resume();
      process.nextTick(() => this.parse());
    }
  }

  fail(status) {
    if (this.res === null && this.socket.writable) {
      this.socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`, 'latin1');
    } else {
      this.socket.destroy();
    }
    this.state = kClosed;
    this.pending = null;
    this.abortRequest();
  }

  abortRequest() {
    const req = this.req;
    if (req !== null && !this.discardBody) {
      this.req = null;
      req.aborted = true;
      req.emit('aborted');
      req.destroy(abortedError());
    }
  }

  destroy() {
    if (this.destroyed) return;
    this.socket.destroy();
    this.onClose();
  }

  onClose() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.state = kClosed;
    this.pending = null;
    this.abortRequest();
    const res = this.res;
    if (res !== null) {
      this.res = null;
      res.emit('close');
    }
  }
}

// A server calling onRequest(req, resp) for each request.
function createServer(onRequest) {
  return net.createServer({noDelay: true}, (socket) => new LeanConnection(socket, onRequest));
}

module.exports = {createServer, kMaxHeaderBytes};
