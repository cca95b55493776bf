'use strict';
// The peer of the node rows: the same response from a plain http.createServer
// behind nginx's proxy_pass (keepalive).  usage: node plain.js PORT
const http = require('http');
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end('hello\n');
});
server.keepAliveTimeout = 60000;  // nginx keeps its upstream connections: do not cut them every 5 s
server.listen(Number(process.argv[2]), '127.0.0.1');
