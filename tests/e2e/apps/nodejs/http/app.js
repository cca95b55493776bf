'use strict';
// An Express 4 app, unchanged: the exported app is the handler (app.handler).
const express = require('express');

const app = express();
app.use(express.json());

app.get('/hello/:name', (req, res) => {
  res.set('x-instance', process.env.FC_INSTANCE_ID);
  res.json({hello: req.params.name, query: req.query, path: req.path});
});

app.post('/items', (req, res) => {
  res.status(201).json({created: req.body, type: req.get('content-type')});
});

// Five chunks, 300 ms apart: the client must see the first long before the last.
app.get('/stream', (req, res) => {
  res.type('text/plain');
  let sent = 0;
  const timer = setInterval(() => {
    res.write(`chunk ${sent}\n`);
    sent += 1;
    if (sent === 5) {
      clearInterval(timer);
      res.end();
    }
  }, 300);
  req.on('close', () => clearInterval(timer));
});

exports.handler = app;
