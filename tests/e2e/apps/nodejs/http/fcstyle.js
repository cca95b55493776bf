'use strict';
// FC-style HTTP handlers: a streamed send, and an error thrown by the handler.
const {Readable} = require('stream');

exports.stream = (req, resp, context) => {
  resp.setHeader('content-type', 'text/plain');
  let n = 0;
  // A stream that produces its three parts 300 ms apart.
  const body = new Readable({
    read() {
      if (n === 3) {
        this.push(null);
        return;
      }
      setTimeout(() => this.push(`part ${n++}\n`), n === 0 ? 0 : 300);
    },
  });
  resp.send(body);
};

exports.throws = async (req, resp, context) => {
  throw new Error(`no luck for ${req.path}`);
};
