'use strict';
// A nodejs function in FC's HTTP handler shape: (req, resp, context).  No
// server code: the runner's nodejs runtime serves it.
exports.handler = (req, resp, context) => {
  const name = req.queries.name || 'world';
  context.logger.info(`greeting ${name}`);
  resp.setHeader('content-type', 'application/json');
  resp.send(JSON.stringify({
    message: `Hello, ${name}, from Node.js ${process.versions.node}`,
    function: context.function.name,
    requestId: context.requestId,
  }));
};
