'use strict';
// FC-style handlers that the runtime's own HTTP server (lean_http.js)
// serves: bodies read as a stream, answered unread, written in parts.
let initialized = 0;
exports.init = (context, callback) => {
  initialized += 1;
  callback(null);
};

// The body read as a stream and sent back; the request's fields in x-info.
exports.echo = (req, resp, context) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    resp.setHeader('content-type', 'application/octet-stream');
    resp.setHeader('x-info', JSON.stringify({
      method: req.method,
      transferEncoding: req.headers['transfer-encoding'] || '',
      initialized,
      complete: req.complete,
      chunks: chunks.length,
    }));
    resp.send(Buffer.concat(chunks));
  });
};

// Answers before (and without) reading the body.
exports.ignores = (req, resp) => {
  resp.setStatusCode(202);
  resp.send(`ignored ${req.headers['content-length'] || 'chunked'}`);
};

// node's ServerResponse methods on FC's resp: a response written in parts.
exports.parts = (req, resp) => {
  resp.writeHead(200, {'content-type': 'text/plain', 'x-parts': '3'});
  resp.write('one,');
  resp.write(Buffer.from('two,'));
  setTimeout(() => resp.end('three'), 10);
};

// A header value that would split the response is refused, as by node.
exports.badHeader = (req, resp) => {
  try {
    resp.setHeader('x-bad', 'a\r\nx-injected: yes');
    resp.send('accepted');
  } catch (err) {
    resp.setStatusCode(400);
    resp.send(err.code);
  }
};
