'use strict';
// Which calling convention an HTTP handler gets (README: the nodejs runtime).
exports.twoArgs = (req, resp) => resp.send(`two: FC methods are ${typeof resp.setStatusCode}`);
exports.threeArgs = (req, res, third) => res.end(`three: third is ${third && third.requestId ? 'the context' : typeof third}`);
