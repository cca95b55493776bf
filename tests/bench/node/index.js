'use strict';
// The node rows of `make bench`: a hello-world FC HTTP handler.
exports.handler = (req, resp, context) => {
  resp.setHeader('content-type', 'text/plain');
  resp.send('hello\n');
};
