'use strict';
// FC's programming model for Node.js: the context object, its logger, the
// error shape, and FC's (req, resp) objects.  Plain Node 20 standard library.

const http = require('http');
const util = require('util');

const env = process.env;

// What never changes within an instance: built once, shared by every context.
const functionInfo = Object.freeze({
  name: env.FC_FUNCTION_NAME || '',
  handler: env.FC_FUNCTION_HANDLER || '',
  memory: Number(env.FC_FUNCTION_MEMORY_SIZE) || 0,
  timeout: Number(env.FC_FUNCTION_TIMEOUT) || 0,
  initializer: env.FC_INITIALIZER || '',
  initializationTimeout: Number(env.FC_INITIALIZATION_TIMEOUT) || 0,
});

// A local runner has no service, account or region of its own: FC's
// variables are taken when the operator sets them (environmentVariables),
// and are empty strings otherwise.
const serviceInfo = Object.freeze({
  name: env.FC_SERVICE_NAME || '',
  logProject: env.FC_SERVICE_LOG_PROJECT || '',
  logStore: env.FC_SERVICE_LOG_STORE || '',
  qualifier: env.FC_QUALIFIER || 'LATEST',
  versionId: env.FC_VERSION_ID || '',
});

const credentials = Object.freeze({accessKeyId: '', accessKeySecret: '', securityToken: ''});

const kLevels = {debug: 10, info: 20, warn: 30, error: 40};
let instanceLogLevel = kLevels.debug;

// context.logger: one line per call in FC's format
//   <ISO time> <request id> [LEVEL] <message>
// on stdout, which the runner tags with the function and the instance.
class Logger {
  constructor(requestId) {
    this.requestId = requestId;
  }
  write(level, args) {
    if (kLevels[level] < instanceLogLevel) return;
    process.stdout.write(`${new Date().toISOString()} ${this.requestId} [${level.toUpperCase()}] ` +
                         `${util.format(...args)}\n`);
  }
  debug(...args) { this.write('debug', args); }
  info(...args) { this.write('info', args); }
  log(...args) { this.write('info', args); }
  verbose(...args) { this.write('debug', args); }
  warn(...args) { this.write('warn', args); }
  error(...args) { this.write('error', args); }
  // FC's logger.setLogLevel('warn'): lines below it are dropped, for the
  // whole instance (as in FC).
  setLogLevel(level) {
    const value = kLevels[String(level).toLowerCase()];
    if (value === undefined) throw new TypeError(`unknown log level ${level}`);
    instanceLogLevel = value;
  }
}

// process.env is a lookup in C++ on every read: read once.
const region = env.FC_REGION || '';
const accountId = env.FC_ACCOUNT_ID || '';
const instanceId = env.FC_INSTANCE_ID || '';

function makeContext(requestId) {
  return {
    requestId,
    request_id: requestId,
    credentials,
    function: functionInfo,
    service: serviceInfo,
    region,
    accountId,
    instanceId,
    logger: new Logger(requestId),
  };
}

function isRuntimeFrame(line) {
  return line.includes(__dirname + '/') || line.includes('(node:internal/') ||
         line === 'at new Promise (<anonymous>)';
}

// FC's error body: {"errorMessage", "errorType", "stackTrace": [lines]}.
function errorBody(err) {
  if (err instanceof Error) {
    const lines = typeof err.stack === 'string' ? err.stack.split('\n').map((l) => l.trim()) : [];
    return {
      errorMessage: err.message,
      errorType: err.name || (err.constructor && err.constructor.name) || 'Error',
      // The frames after the message line, less the runtime's own.
      stackTrace: lines.slice(1).filter((l) => !isRuntimeFrame(l)),
    };
  }
  if (err !== null && typeof err === 'object') {
    let message;
    try {
      message = JSON.stringify(err);
    } catch {
      message = util.inspect(err);
    }
    return {errorMessage: message, errorType: 'Object', stackTrace: []};
  }
  return {errorMessage: String(err), errorType: typeof err, stackTrace: []};
}

// The one line the instance logs for a function error, with the request id
// (the runner adds its own "FC Invoke End ... Error" line).
function logFunctionError(requestId, body) {
  process.stderr.write(`${new Date().toISOString()} ${requestId} [ERROR] ${JSON.stringify(body)}\n`);
}

// Calls a user function in any of FC's styles and settles once:
//   async (...args) => result        the promise decides
//   (...args, callback) => void      callback(err, result) decides
//   (...args) => result              the return value is the result
// A throw is an error in every style.  Later callbacks are ignored.
function callUser(fn, thisArg, args) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(result);
    };
    let returned;
    try {
      returned = fn.call(thisArg, ...args, callback);
    } catch (err) {
      callback(err === undefined || err === null ? new Error(`threw ${err}`) : err);
      return;
    }
    if (returned !== null && typeof returned === 'object' && typeof returned.then === 'function') {
      returned.then(
          (result) => callback(null, result),
          (err) => callback(err === undefined || err === null ? new Error(`rejected with ${err}`) : err));
    } else if (fn.length <= args.length) {
      callback(null, returned);
    }
  });
}

// An event function's result as bytes: Buffer unchanged, string as UTF-8,
// undefined as an empty body, anything else JSON.stringify'd.
function resultBytes(result) {
  if (Buffer.isBuffer(result)) return result;
  if (typeof result === 'string') return Buffer.from(result, 'utf8');
  if (result === undefined) return Buffer.alloc(0);
  if (result instanceof Uint8Array) return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  if (result instanceof ArrayBuffer) return Buffer.from(result);
  const text = JSON.stringify(result);
  return Buffer.from(text === undefined ? '' : text, 'utf8');
}

// FC's request fields: path, queries, clientIP, as prototype getters (not
// own properties), so frameworks that swap the prototype (Express) keep
// working.  On node's IncomingMessage (FcRequest) and on the runtime's own
// request (lean_http.js).
const requestFields = {
  path: {
    get() {
      const q = this.url.indexOf('?');
      return q < 0 ? this.url : this.url.slice(0, q);
    },
  },
  queries: {
    get() {
      const q = this.url.indexOf('?');
      const out = {};
      if (q < 0) return out;
      for (const [key, value] of new URLSearchParams(this.url.slice(q + 1))) {
        const prev = out[key];
        if (prev === undefined) out[key] = value;
        else if (Array.isArray(prev)) prev.push(value);
        else out[key] = [prev, value];
      }
      return out;
    },
  },
  clientIP: {
    get() {
      // The runner's x-fc-client-ip (client-sent x-fc-* never get through).
      const client = this.headers['x-fc-client-ip'];
      if (client) return client;
      const forwarded = this.headers['x-forwarded-for'];
      if (forwarded) return forwarded.split(',')[0].trim();
      const real = this.headers['x-real-ip'];
      if (real) return real;
      return this.socket ? this.socket.remoteAddress : '';
    },
  },
};

function defineRequestFields(proto) {
  for (const [name, descriptor] of Object.entries(requestFields)) {
    Object.defineProperty(proto, name, {...descriptor, configurable: true, enumerable: false});
  }
}

// FC's resp.send(Buffer | string | stream), anything else as its String(),
// on either response (node's ServerResponse or the lean server's).
function sendBody(resp, body) {
  if (body !== null && typeof body === 'object' && typeof body.pipe === 'function') {
    body.on('error', (err) => {
      process.stderr.write(`response stream failed: ${err && err.stack ? err.stack : err}\n`);
      resp.destroy(err);
    });
    body.pipe(resp);
    return;
  }
  if (body === undefined || body === null) {
    resp.end();
  } else if (typeof body === 'string' || body instanceof Uint8Array) {
    resp.end(body);
  } else {
    resp.end(String(body));
  }
}

// The request an HTTP function sees with node's http server (plain Node
// handlers): node's own IncomingMessage, a readable stream of the body, with
// FC's fields on top.
class FcRequest extends http.IncomingMessage {}
defineRequestFields(FcRequest.prototype);

// The response of an HTTP function: Node's ServerResponse plus FC's
// setStatusCode / deleteHeader / send(Buffer | string | stream).
class FcResponse extends http.ServerResponse {
  constructor(req, options) {
    super(req, options);
    // No Date header: the front nginx replaces it with its own (the fc
    // module hides an instance's Date, as proxy_pass does), so making it
    // here, and parsing and relaying it in the runner, is work for nothing.
    // A handler that sets Date itself still sends it.
    this.sendDate = false;
  }
  setStatusCode(code) {
    this.statusCode = code;
    return this;
  }
  deleteHeader(name) {
    this.removeHeader(name);
    return this;
  }
  send(body) {
    sendBody(this, body);
  }
}

module.exports = {
  makeContext,
  errorBody,
  logFunctionError,
  callUser,
  resultBytes,
  defineRequestFields,
  sendBody,
  FcRequest,
  FcResponse,
};
