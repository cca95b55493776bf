'use strict';
// The nodejs runtime of fc-runner: an instance (DESIGN §6) that runs the
// user's FC handler.  Started by the runner as
//   /usr/bin/node <runtimes>/nodejs/bootstrap.js
// in codeUri, with FC_FUNCTION_HANDLER, FC_INITIALIZER, FC_SERVER_PORT, ...
//
// It is an HTTP/1.1 server (keep-alive, no Nagle) on 127.0.0.1:$FC_SERVER_PORT:
// lean_http.js for FC-style handlers, node's http for plain Node ones.  The runner names the call in
// x-fc-control-path:
//   /initialize    POST, once, when an initializer is configured
//   /invoke        POST, event functions: body = event bytes, response = result
//   /http-invoke   HTTP functions: the client's request as it came
//   /pre-stop      GET, before the instance is stopped
// Requests run concurrently on the event loop; the runner keeps their number
// within instanceConcurrency.

const http = require('http');
const fs = require('fs');
const path = require('path');
const Module = require('module');
const {pathToFileURL} = require('url');
const fc = require('./fc');
const lean = require('./lean_http');

const env = process.env;
const codeDir = env.FC_FUNC_CODE_PATH || process.cwd();

function fatal(message) {
  process.stderr.write(`fc nodejs runtime: ${message}\n`);
  process.exit(1);
}

// ---- loading the user's code ------------------------------------------------

// Modules resolve from codeUri/node_modules (FC's layout: `npm install` in
// the code directory), also for files loaded from elsewhere.
function addCodeNodeModules() {
  const dir = path.join(codeDir, 'node_modules');
  const paths = (env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  if (!paths.includes(dir)) {
    env.NODE_PATH = [dir, ...paths].join(path.delimiter);
    Module._initPaths();  // eslint-disable-line no-underscore-dangle -- re-reads NODE_PATH
  }
}

// "dir/file.name" -> { file: "dir/file", names: ["name"] }; FC's rule: the
// part before the first dot of the last path segment is the file.
function splitHandler(spec, what) {
  const slash = spec.lastIndexOf('/');
  const dot = spec.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === spec.length - 1) {
    fatal(`${what} ${JSON.stringify(spec)} must be file.export (e.g. index.handler)`);
  }
  return {file: spec.slice(0, dot), names: spec.slice(dot + 1).split('.')};
}

const loadedFiles = new Map();

async function loadFile(file, what, spec) {
  if (loadedFiles.has(file)) return loadedFiles.get(file);
  const base = path.resolve(codeDir, file);
  const codeRequire = Module.createRequire(path.join(codeDir, 'index.js'));
  let exports;
  try {
    if (fs.existsSync(`${base}.mjs`)) {
      exports = await import(pathToFileURL(`${base}.mjs`).href);
    } else {
      let resolved;
      try {
        resolved = codeRequire.resolve(base);
      } catch (err) {
        if (err && err.code === 'MODULE_NOT_FOUND' && !fs.existsSync(base) && !fs.existsSync(`${base}.js`)) {
          fatal(`${what} ${JSON.stringify(spec)}: no file ${file}.js (or .mjs, .cjs) in ${codeDir}`);
        }
        throw err;
      }
      try {
        exports = codeRequire(resolved);
      } catch (err) {
        if (!err || err.code !== 'ERR_REQUIRE_ESM') throw err;
        exports = await import(pathToFileURL(resolved).href);  // "type": "module" packages
      }
    }
  } catch (err) {
    fatal(`${what} ${JSON.stringify(spec)}: loading ${file} failed: ${err && err.stack ? err.stack : err}`);
  }
  loadedFiles.set(file, exports);
  return exports;
}

async function resolveFunction(spec, what) {
  const {file, names} = splitHandler(spec, what);
  let value = await loadFile(file, what, spec);
  // An ES module's CommonJS-style default export: export default { handler }.
  for (const name of names) {
    let next = value == null ? undefined : value[name];
    if (next === undefined && value && value.default && typeof value.default === 'object') {
      next = value.default[name];
    }
    value = next;
  }
  if (typeof value !== 'function') {
    fatal(`${what} ${JSON.stringify(spec)}: ${file} does not export a function ${names.join('.')} ` +
          `(found ${value === undefined ? 'nothing' : typeof value})`);
  }
  return value;
}

// ---- HTTP functions: which calling convention -------------------------------
//
// FC's (req, resp, context) and a plain Node (req, res) handler get the same
// two objects (Node's request and response with FC's fields and methods on
// top).  The difference is the third argument: an Express or Connect app is
// a function (req, res, next) whose `next` must not be the context, so
//   - FC_NODEJS_HTTP_STYLE=node|fc (environmentVariables) decides when set;
//   - otherwise an app object (a function with .handle and .use: Express,
//     Connect) and a handler declaring fewer than 3 parameters get (req, res);
//   - any other handler gets (req, resp, context).
// The context is also on the request as req.fcContext.
function wantsContext(handler) {
  const style = env.FC_NODEJS_HTTP_STYLE;
  if (style === 'fc') return true;
  if (style === 'node') return false;
  if (style) fatal(`FC_NODEJS_HTTP_STYLE must be fc or node, got ${JSON.stringify(style)}`);
  if (typeof handler.handle === 'function' && typeof handler.use === 'function') return false;
  return handler.length >= 3;
}

// ---- the calls ----------------------------------------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendFunctionError(res, requestId, err) {
  const body = fc.errorBody(err);
  fc.logFunctionError(requestId, body);
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  if (res.headersSent) {
    res.destroy();  // the response is under way: the runner sees it cut short
    return;
  }
  res.writeHead(404, {
    'content-type': 'application/json',
    'content-length': bytes.length,
    'x-fc-status': '404',
  });
  res.end(bytes);
}

// The runner's own headers, read from rawHeaders without building
// req.headers (a plain handler may never need it).  The runner writes them
// after the client's, in lower case, with client-sent x-fc-* removed: the
// last match is the runner's.
function runnerHeader(req, name) {
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    if (raw[i] === name) return raw[i + 1];
  }
  return undefined;
}

function requestIdOf(req) { return runnerHeader(req, 'x-fc-request-id') || ''; }

async function onInvoke(handler, req, res) {
  const requestId = requestIdOf(req);
  let result;
  try {
    const event = await readBody(req);
    result = await fc.callUser(handler, undefined, [event, fc.makeContext(requestId)]);
  } catch (err) {
    sendFunctionError(res, requestId, err);
    return;
  }
  let bytes;
  try {
    bytes = fc.resultBytes(result);
  } catch (err) {  // JSON.stringify of a cycle or a BigInt
    sendFunctionError(res, requestId, err);
    return;
  }
  res.writeHead(200, {'content-length': bytes.length});
  res.end(bytes);
}

// A throw or a rejection of an HTTP handler: FC's error body, or the
// response cut short when it is under way.
function httpHandlerFailed(req, res, requestId, err) {
  const body = fc.errorBody(err);
  fc.logFunctionError(requestId, body);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(500, {'content-type': 'application/json', 'content-length': bytes.length});
  res.end(bytes);
}

function onHttpInvoke(handler, withContext, req, res) {
  const requestId = requestIdOf(req);
  const context = fc.makeContext(requestId);
  req.fcContext = context;
  let returned;
  try {
    returned = withContext ? handler(req, res, context) : handler(req, res);
  } catch (err) {
    httpHandlerFailed(req, res, requestId, err);
    return;
  }
  // Only an async handler's promise needs a closure (most handlers return
  // nothing: no allocation per request for them).
  if (returned !== null && typeof returned === 'object' && typeof returned.then === 'function') {
    returned.then(undefined, (err) => httpHandlerFailed(req, res, requestId, err));
  }
}

let initialized = null;  // the initializer's promise: it runs once per instance

function onInitialize(initializer, req, res) {
  const requestId = requestIdOf(req);
  req.resume();
  if (!initialized) {
    initialized = initializer
        ? fc.callUser(initializer, undefined, [fc.makeContext(requestId)])
        : Promise.resolve();
  }
  initialized.then(
      () => {
        res.writeHead(200, {'content-length': 0});
        res.end();
      },
      (err) => sendFunctionError(res, requestId, err));
}

// GET /pre-stop and /pre-freeze: FC's hooks, hook(context, callback) or
// async (context).  The hook's handler comes from FC_PRE_STOP_HANDLER /
// FC_PRE_FREEZE_HANDLER (file.export); without one the call just succeeds.
function onLifecycleHook(hook, req, res) {
  const requestId = requestIdOf(req);
  req.resume();
  const done = hook ? fc.callUser(hook, undefined, [fc.makeContext(requestId)]) : Promise.resolve();
  done.then(
      () => {
        res.writeHead(200, {'content-length': 0});
        res.end();
      },
      (err) => sendFunctionError(res, requestId, err));
}

// Without x-fc-control-path (someone calling the instance by hand) the URL
// decides, as in FC's custom-runtime contract.
function controlPathOf(req) {
  const header = runnerHeader(req, 'x-fc-control-path');
  if (header) return header;
  const url = req.url;
  if (req.method === 'POST' && (url === '/invoke' || url === '/initialize')) return url;
  if (req.method === 'GET' && (url === '/pre-stop' || url === '/pre-freeze')) return url;
  return '/http-invoke';
}

async function main() {
  const port = Number(env.FC_SERVER_PORT || env.FC_CUSTOM_LISTEN_PORT || 9000);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) fatal(`bad FC_SERVER_PORT ${env.FC_SERVER_PORT}`);
  const handlerSpec = env.FC_FUNCTION_HANDLER || 'index.handler';
  const initializerSpec = env.FC_INITIALIZER || '';

  addCodeNodeModules();
  const handler = await resolveFunction(handlerSpec, 'handler');
  const initializer = initializerSpec ? await resolveFunction(initializerSpec, 'initializer') : null;
  const withContext = wantsContext(handler);
  const preStop = env.FC_PRE_STOP_HANDLER ? await resolveFunction(env.FC_PRE_STOP_HANDLER, 'preStop handler') : null;
  const preFreeze =
      env.FC_PRE_FREEZE_HANDLER ? await resolveFunction(env.FC_PRE_FREEZE_HANDLER, 'preFreeze handler') : null;

  const onRequest = (req, res) => {
    switch (controlPathOf(req)) {
      case '/invoke':
        onInvoke(handler, req, res);
        return;
      case '/initialize':
        onInitialize(initializer, req, res);
        return;
      case '/pre-stop':
        onLifecycleHook(preStop, req, res);
        return;
      case '/pre-freeze':
        onLifecycleHook(preFreeze, req, res);
        return;
      default:
        onHttpInvoke(handler, withContext, req, res);
    }
  };
  // A handler that gets FC's (req, resp, context), and event handlers of
  // that arity, are served by the runtime's own lean server; a plain Node
  // (req, res) handler gets node's http objects.
  const server = withContext ? lean.createServer(onRequest) : http.createServer({
    IncomingMessage: fc.FcRequest,
    ServerResponse: fc.FcResponse,
    noDelay: true,
    maxHeaderSize: lean.kMaxHeaderBytes,
    // The runner owns every timeout (DESIGN §4: the function's `timeout`
    // measures the instance); Node's own would cut long uploads and idle
    // pooled connections.
    requestTimeout: 0,
    headersTimeout: 0,
    keepAliveTimeout: 0,
  }, onRequest);
  server.on('clientError', (err, socket) => {
    if (socket.writable && !socket.bytesWritten) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('error', (err) => fatal(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
  server.listen(port, '127.0.0.1');
}

main().catch((err) => fatal(err && err.stack ? err.stack : String(err)));
