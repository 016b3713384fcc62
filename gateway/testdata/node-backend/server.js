// A gRPC backend in Node (@grpc/grpc-js) that knows nothing of Stepup: it
// serves relay.v1 and bank.v1 from the same descriptor set the gateway
// reads, and trusts only the gateway's identity assertion (stepup-identity),
// verified with jose against the gateway's JWKS. Every call that reaches a
// handler is counted (StatsService.Stats, called directly, reports them).
//
//   node server.js --listen 127.0.0.1:0 --descriptors api.binpb \
//     --jwks-url http://127.0.0.1:8081/.well-known/jwks.json \
//     --issuer https://gateway.example --audience relay-backend
//
// It prints "listening on PORT" once it serves.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const jose = require('jose');

const { values: args } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    descriptors: { type: 'string' },
    'jwks-url': { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
  },
});
for (const name of ['descriptors', 'jwks-url', 'issuer', 'audience']) {
  if (!args[name]) {
    console.error(`--${name} is required`);
    process.exit(2);
  }
}

const definition = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(args.descriptors), {
  keepCase: true, longs: Number, enums: String, defaults: true,
});
const api = grpc.loadPackageDefinition(definition);
const jwks = jose.createRemoteJWKSet(new URL(args['jwks-url']));

const calls = {};

// Every unary request keeps the bytes it arrived as: when the gateway read
// the request (a step-up method), its assertion carries dig, the request
// digest of docs/PROTOCOL.md §13.3, which must be that of these bytes, or
// the call is refused. The backend then runs exactly what the user approved.
const rawBytes = new WeakMap();
for (const svc of [api.relay.v1.RelayService.service, api.bank.v1.BankService.service]) {
  for (const m of Object.values(svc)) {
    if (m.requestStream) continue;
    const decode = m.requestDeserialize;
    m.requestDeserialize = (buf) => {
      const v = decode(buf);
      rawBytes.set(v, Buffer.from(buf));
      return v;
    };
  }
}
const b64url = (b) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function requestDigest(method, raw) {
  return b64url(crypto.createHash('sha256').update(Buffer.concat([Buffer.from(method), Buffer.from([0]), raw])).digest());
}

// verify checks the assertion of a call: exactly one value, signed by the
// gateway (ES256, typ stepup-id+jwt), for this backend, for this method.
async function verify(call, method) {
  const values = call.metadata.get('stepup-identity');
  if (values.length !== 1) throw new Error(`${values.length} stepup-identity values`);
  const { payload } = await jose.jwtVerify(String(values[0]), jwks, {
    issuer: args.issuer, audience: args.audience, typ: 'stepup-id+jwt', algorithms: ['ES256'],
    maxTokenAge: '10m', clockTolerance: 5,
  });
  if (payload.method !== method) throw new Error(`assertion for ${payload.method}, called ${method}`);
  if (payload.dig !== undefined) {
    const raw = call.request && rawBytes.get(call.request);
    if (!raw || requestDigest(method, raw) !== payload.dig) throw new Error('the request is not the one the gateway checked');
  }
  return payload;
}

const unauthenticated = (err) => ({ code: grpc.status.UNAUTHENTICATED, details: `no valid identity assertion: ${err.message}` });

// guardUnary and guardStream count the call, verify its assertion and run
// the handler with the verified claims.
function guardUnary(method, handler) {
  return (call, callback) => {
    calls[method] = (calls[method] || 0) + 1;
    verify(call, method).then(
      (who) => handler(call, callback, who),
      (err) => callback(unauthenticated(err)));
  };
}
function guardStream(method, handler) {
  return (call) => {
    calls[method] = (calls[method] || 0) + 1;
    verify(call, method).then(
      (who) => handler(call, who),
      (err) => (call.callback ? call.callback(unauthenticated(err)) : call.emit('error', unauthenticated(err))));
  };
}

const chunk = (i, size) => Buffer.alloc(size, i % 256);

const R = '/relay.v1.RelayService/';
const relay = {
  Echo: guardUnary(R + 'Echo', (call, cb) => {
    const echo = call.metadata.get('x-echo');
    if (echo.length > 0) {
      const h = new grpc.Metadata(); h.set('x-echo', echo[0]); call.sendMetadata(h);
      const t = new grpc.Metadata(); t.set('x-echo-trailer', echo[0]);
      return cb(null, { payload: call.request.payload }, t);
    }
    cb(null, { payload: call.request.payload });
  }),
  Download: guardStream(R + 'Download', (call) => {
    for (let i = 0; i < call.request.count; i++) call.write({ index: i, data: chunk(i, call.request.size) });
    call.end();
  }),
  Upload: guardStream(R + 'Upload', (call) => {
    // A client stream: answered through the callback kept on the call.
    const h = crypto.createHash('sha256'); let n = 0;
    call.on('data', (m) => { h.update(m.data); n++; });
    call.on('end', () => call.callback(null, { count: n, sha256: h.digest() }));
  }),
  Chat: guardStream(R + 'Chat', (call) => {
    let i = 0;
    call.on('data', (m) => call.write({ payload: m.payload, index: i++ }));
    call.on('end', () => call.end());
  }),
  Whoami: guardUnary(R + 'Whoami', (call, cb, who) => {
    cb(null, {
      assertion: String(call.metadata.get('stepup-identity')[0]),
      subject: who.sub,
      metadata_names: Object.keys(call.metadata.getMap()).sort(),
    });
  }),
  Slow: guardUnary(R + 'Slow', (call, cb) => {
    call.on('cancelled', () => cb({ code: grpc.status.CANCELLED, details: 'cancelled' }));
  }),
  Fail: guardUnary(R + 'Fail', (call, cb) => {
    const t = new grpc.Metadata(); t.set('x-fail', 'yes');
    cb({ code: call.request.code, details: call.request.message, metadata: t });
  }),
  Pay: guardUnary(R + 'Pay', (call, cb) => {
    const r = call.request;
    const amounts = r.amounts.map(Number);
    // proto-loader reads a map of a descriptor set as its repeated entries.
    const labels = Object.fromEntries((r.labels || []).map((e) => [e.key, e.value]));
    cb(null, { amounts, total: amounts.reduce((a, b) => a + b, 0), payee: r.payee, labels: Object.entries(labels).map(([key, value]) => ({ key, value })) });
  }),
};

// Upload is a client stream: grpc-js hands it (call, callback). guardStream
// takes one argument, so keep the callback on the call.
const upload = relay.Upload;
relay.Upload = (call, callback) => { call.callback = callback; upload(call); };

// proto-loader reads maps from a descriptor set as their repeated entry
// messages.
const stats = {
  Stats: (call, cb) => cb(null, { calls: Object.entries(calls).map(([key, value]) => ({ key, value })) }),
};

// A tiny bank: one EUR account per subject, owned by the assertion's sub.
const B = '/bank.v1.BankService/';
const accounts = new Map();
let seq = 0;
function own(who, id) {
  if (!accounts.has(id)) accounts.set(id, { owner: id.replace(/-checking$/, ''), balance: 100000, history: [] });
  const a = accounts.get(id);
  return a.owner === who.sub ? a : null;
}
const notFound = { code: grpc.status.NOT_FOUND, details: 'no such account' };
const now = () => ({ seconds: Math.floor(Date.now() / 1000), nanos: 0 });
const bank = {
  GetBalance: guardUnary(B + 'GetBalance', (call, cb, who) => {
    const a = own(who, call.request.account_id);
    if (!a) return cb(notFound);
    cb(null, { account_id: call.request.account_id, balance: { amount_minor: a.balance, currency: 'EUR' } });
  }),
  Transfer: guardUnary(B + 'Transfer', (call, cb, who) => {
    const r = call.request; const a = own(who, r.from_account_id);
    if (!a) return cb(notFound);
    if (r.amount_minor <= 0 || r.amount_minor > a.balance) return cb({ code: grpc.status.FAILED_PRECONDITION, details: 'insufficient funds' });
    a.balance -= r.amount_minor;
    const id = `tr-${++seq}`;
    a.history.push({ transaction_id: id, amount: { amount_minor: -r.amount_minor, currency: r.currency }, counterparty_iban: r.to_iban, booked_at: now(), reference: r.reference });
    cb(null, { transfer_id: id, balance_after: { amount_minor: a.balance, currency: 'EUR' } });
  }),
  AddPayee: guardUnary(B + 'AddPayee', (call, cb) => cb(null, { payee_id: `payee-${++seq}` })),
  WatchTransactions: guardStream(B + 'WatchTransactions', (call, who) => {
    const a = own(who, call.request.account_id);
    if (!a) return call.emit('error', notFound);
    for (const t of a.history) call.write({ transaction: t });
    call.end();
  }),
  ExportStatements: guardStream(B + 'ExportStatements', (call, who) => {
    const a = own(who, call.request.account_id);
    if (!a) return call.emit('error', notFound);
    for (const t of a.history) call.write({ transaction: t });
    call.end();
  }),
};

const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 << 20, 'grpc.max_send_message_length': 16 << 20 });
server.addService(api.relay.v1.RelayService.service, relay);
server.addService(api.relay.v1.StatsService.service, stats);
server.addService(api.bank.v1.BankService.service, bank);
server.bindAsync(args.listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log(`listening on ${port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.tryShutdown(() => process.exit(0)));
