'use strict';
// Event functions of nodejs_runtime_test.cc, one export per case.
let counter = 0;
let inflight = 0;
let maxInflight = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// initializer adds 1 (callback style), handler adds 2 (async style).
exports.addOne = (context, callback) => {
  counter += 1;
  callback(null);
};
exports.addTwo = async (event, context) => {
  counter += 2;
  return String(counter);
};

// Bytes in, the same bytes out (callback style with the Buffer).
exports.echo = (event, context, callback) => {
  callback(null, Buffer.isBuffer(event) ? event : Buffer.from('not a Buffer'));
};

// Results that are not bytes: JSON.stringify'd.
exports.object = async (event) => ({length: event.length, nested: [1, 'two', null]});

// The three kinds of function error.
exports.throws = () => {
  throw new RangeError('thrown on purpose');
};
exports.callbackError = (event, context, callback) => {
  setImmediate(() => callback(new TypeError('passed to the callback')));
};
exports.rejects = async () => {
  await sleep(1);
  throw new SyntaxError('rejected on purpose');
};

// What the context carries, and a logger line with the request id.
exports.context = (event, context, callback) => {
  context.logger.info('logged %s from %s', 'this', context.function.name);
  console.log('plain console output');
  const {logger, ...rest} = context;
  callback(null, {...rest, hasLogger: typeof logger.info === 'function'});
};

// The seed's scenario: a slow initializer, a fast handler.
exports.slowInit = (context, callback) => {
  setTimeout(() => callback(null), 1000);
};
exports.instance = async () => process.env.FC_INSTANCE_ID;

// One second of waiting on the event loop; reports the concurrency it saw.
exports.sleepOneSecond = async () => {
  inflight += 1;
  maxInflight = Math.max(maxInflight, inflight);
  await sleep(1000);
  inflight -= 1;
  return {instance: process.env.FC_INSTANCE_ID, maxInflight};
};

// An initializer that fails.
exports.failingInit = async () => {
  throw new Error('the database is not there');
};

// FC's preStop hook (FC_PRE_STOP_HANDLER=index.preStop).
exports.preStop = (context, callback) => {
  console.log(`preStop ran with request id ${context.requestId}`);
  setTimeout(() => callback(null), 10);
};
