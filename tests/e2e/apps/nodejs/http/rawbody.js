'use strict';
// FC's HTTP handler shape, reading its body with npm raw-body.
const getRawBody = require('raw-body');

exports.handler = (req, resp, context) => {
  getRawBody(req, {length: req.headers['content-length'], limit: '10mb'}, (err, body) => {
    if (err) {
      resp.setStatusCode(400);
      resp.send(String(err));
      return;
    }
    resp.setStatusCode(201);
    resp.setHeader('content-type', 'application/octet-stream');
    resp.setHeader('x-removed', 'yes');
    resp.deleteHeader('x-removed');
    resp.setHeader('x-request', JSON.stringify({
      method: req.method,
      path: req.path,
      queries: req.queries,
      url: req.url,
      clientIP: req.clientIP,
      requestId: context.requestId,
      contentType: req.headers['content-type'],
    }));
    resp.send(body);
  });
};
