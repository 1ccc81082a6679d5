// A small APNs-like server on Node's built-in http2 module, for the interop tests
// (tests/interop/test_interop.py). Nobody on this project wrote its HTTP/2 stack.
//
//   node node_apns_server.js <certfile> <keyfile> <options JSON>
//
// Options: initialWindowSize, maxConcurrentStreams, headerTableSize (the server's SETTINGS),
// raiseStreamsTo (after its first answer on a connection, the server raises
// MAX_CONCURRENT_STREAMS to this). It listens on 127.0.0.1, on a free port, and prints
// "LISTENING <port>" once ready. POST /3/device/<token>: the answer depends on the token
// (the same rule as _expected_rejected in test_interop.py): 400 BadDeviceToken when the token,
// read as a hex number, is 3 modulo 7; else 200. The request's apns-id is echoed back.
'use strict';
const fs = require('fs');
const http2 = require('http2');

const [certfile, keyfile, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson || '{}');
const settings = {};
for (const name of ['initialWindowSize', 'maxConcurrentStreams', 'headerTableSize']) {
  if (options[name] !== undefined) settings[name] = options[name];
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(certfile),
  key: fs.readFileSync(keyfile),
  allowHTTP1: false,
  settings,
  // Plenty of streams may be pending in the test's bursts.
  maxSessionMemory: 64,
});

server.on('session', (session) => {
  session.answered = 0;
});

server.on('stream', (stream, headers) => {
  const chunks = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', () => {
    const path = headers[':path'] || '';
    const match = /^\/3\/device\/([0-9a-f]{64})$/.exec(path);
    const apnsId = headers['apns-id'] || '00000000-0000-0000-0000-000000000000';
    let status = 200;
    let body = '';
    if (headers[':method'] !== 'POST' || !match) {
      status = 404;
      body = JSON.stringify({ reason: 'BadPath' });
    } else if (BigInt('0x' + match[1]) % 7n === 3n) {
      status = 400;
      body = JSON.stringify({ reason: 'BadDeviceToken' });
    } else {
      JSON.parse(Buffer.concat(chunks).toString('utf8')); // the payload must be JSON
    }
    const out = { ':status': status, 'apns-id': apnsId };
    if (body) out['content-type'] = 'application/json';
    stream.respond(out, { endStream: !body });
    if (body) stream.end(body);
    const session = stream.session;
    session.answered += 1;
    if (session.answered === 1 && options.raiseStreamsTo) {
      session.settings({ maxConcurrentStreams: options.raiseStreamsTo });
    }
  });
  stream.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
