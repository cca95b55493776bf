'use strict';
// An Express 4 app as it ran before the move: `node app.js` still serves it
// on its own port.  The one line for fc-gateway is the export at the end:
// the runner's nodejs runtime calls the app as the function's handler
// (handler: app.handler), so routes, middleware, 404s and streaming work as
// they did.
const express = require('express');

const app = express();
app.use(express.json());

const todos = [];

app.get('/', (req, res) => {
  res.json({message: 'Hello from Express', path: req.path, instance: process.env.FC_INSTANCE_ID || null});
});

app.get('/todos', (req, res) => res.json(todos));

app.post('/todos', (req, res) => {
  if (!req.body || typeof req.body.title !== 'string') {
    res.status(400).json({error: 'expected {"title": "..."}'});
    return;
  }
  const todo = {id: todos.length + 1, title: req.body.title};
  todos.push(todo);
  res.status(201).location(`/todos/${todo.id}`).json(todo);
});

// Server-sent events: one tick every 200 ms, streamed as they happen.
app.get('/ticks', (req, res) => {
  res.set({'content-type': 'text/event-stream', 'cache-control': 'no-cache'});
  let n = 0;
  const timer = setInterval(() => {
    n += 1;
    res.write(`data: tick ${n}\n\n`);
    if (n === 3) {
      clearInterval(timer);
      res.end();
    }
  }, 200);
  req.on('close', () => clearInterval(timer));
});

module.exports.handler = app;

if (require.main === module) {
  const port = Number(process.env.PORT || 3000);
  app.listen(port, () => console.log(`listening on ${port}`));
}
