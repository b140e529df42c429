// Drives the real socket.io-client for Go tests (internal/sioclient).
//
// Usage: node client.js '<options JSON>'
//
// Options: url, path, token, tokenIn ("auth" | "header" | "none"), since (sent as
// auth.since, beside the token), transports,
// events (names to listen to), reconnection, reconnectionDelay,
// reconnectionDelayMax, reconnectionAttempts, timeout.
//
// Writes one JSON object per line on stdout:
//   {"type":"connect","id":…,"recovered":…,"transport":…}
//   {"type":"connect_error","message":…,"data":…,"active":…}
//   {"type":"disconnect","reason":…,"active":…}
//   {"type":"event","name":…,"data":…,"offset":…}
//   {"type":"upgrade","transport":…}
//   {"type":"reconnect_attempt","attempt":…}
//   {"type":"ack","seq":…,"data":[…]}   (the server's ack of an "emit" with "ack":true)
// Reads commands, one per line, on stdin: "disconnect" (socket.disconnect()),
// "connect" (socket.connect()), "close" (socket.io.engine.close(): a network drop,
// which the client recovers from), "exit", and
// 'emit {"event":…,"args":[…],"ack":…,"seq":…}': socket.emit(event, ...args), as the
// seeds send updates, with an ack callback when ack is true.
'use strict';

const { io } = require('socket.io-client');
const readline = require('readline');

const opts = JSON.parse(process.argv[2] || '{}');

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const ioOpts = { withCredentials: false, forceNew: true };
if (opts.path) ioOpts.path = opts.path;
if (opts.transports) ioOpts.transports = opts.transports;
if (opts.reconnection !== undefined) ioOpts.reconnection = opts.reconnection;
if (opts.reconnectionDelay !== undefined) ioOpts.reconnectionDelay = opts.reconnectionDelay;
if (opts.reconnectionDelayMax !== undefined) ioOpts.reconnectionDelayMax = opts.reconnectionDelayMax;
if (opts.reconnectionAttempts !== undefined) ioOpts.reconnectionAttempts = opts.reconnectionAttempts;
if (opts.timeout !== undefined) ioOpts.timeout = opts.timeout;

const token = opts.token;
// auth.since: follow from a snapshot's H (GET /v1/snapshot); no auth option without it.
const since = opts.since === undefined ? undefined : { since: opts.since };
let socket;
if (opts.tokenIn === 'header') {
  socket = io(opts.url, { ...ioOpts, extraHeaders: { Authorization: 'Bearer ' + token }, ...(since && { auth: since }) });
} else if (opts.tokenIn === 'none') {
  socket = io(opts.url, { ...ioOpts, ...(since && { auth: since }) });
} else {
  // The seeds' dashboard code, unchanged (plus since when given).
  socket = io(opts.url, { ...ioOpts, auth: { token, ...since } });
}

// Handlers in the seeds' style: socket.on('appointments.created', (appointment) => …).
// The server appends the offset as a last argument; a seed handler ignores it.
for (const name of opts.events || []) {
  socket.on(name, (appointment, offset) => {
    out({ type: 'event', name, data: appointment === undefined ? null : appointment, offset: offset === undefined ? null : offset });
  });
}

socket.on('connect', () => {
  out({ type: 'connect', id: socket.id, recovered: socket.recovered, transport: socket.io.engine.transport.name });
});
socket.on('connect_error', (err) => {
  out({ type: 'connect_error', message: err.message, data: err.data === undefined ? null : err.data, active: socket.active });
});
socket.on('disconnect', (reason) => {
  out({ type: 'disconnect', reason, active: socket.active });
});
socket.io.on('open', () => {
  socket.io.engine.on('upgrade', (transport) => out({ type: 'upgrade', transport: transport.name }));
});
socket.io.on('reconnect_attempt', (attempt) => out({ type: 'reconnect_attempt', attempt }));

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.startsWith('emit ')) {
    const cmd = JSON.parse(line.slice('emit '.length));
    const args = cmd.args || [];
    if (cmd.ack) {
      socket.emit(cmd.event, ...args, (...res) => out({ type: 'ack', seq: cmd.seq, data: res }));
    } else {
      socket.emit(cmd.event, ...args);
    }
    return;
  }
  switch (line.trim()) {
    case 'disconnect':
      socket.disconnect();
      break;
    case 'connect':
      socket.connect();
      break;
    case 'close':
      socket.io.engine.close();
      break;
    case 'exit':
      socket.disconnect();
      process.exit(0);
  }
});
rl.on('close', () => {
  socket.disconnect();
  process.exit(0);
});
