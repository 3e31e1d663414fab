// Drives the agent's gRPC API with the reference Node.js stack (@grpc/grpc-js + @grpc/proto-loader), loading the
// same .proto files the server is generated from. Prints one JSON object on stdout for the xunit test to assert on.
// Usage: node interop.js <host:port> <protos dir> <records to receive> [bearer token]
'use strict';
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [target, protosDir, wantedText, token] = process.argv.slice(2);
const wanted = Number(wantedText);

const definition = protoLoader.loadSync('ebpf/v1/exectrace.proto', {
  includeDirs: [protosDir],
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const ebpf = grpc.loadPackageDefinition(definition).ebpf.v1;
const client = new ebpf.ExecTrace(target, grpc.credentials.createInsecure());

function metadata() {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

function unary(method, request, deadlineMs) {
  return new Promise((resolve) => {
    const options = deadlineMs ? { deadline: new Date(Date.now() + deadlineMs) } : {};
    client[method](request, metadata(), options, (err, response) => {
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ code: 0, response });
    });
  });
}

function subscribe() {
  return new Promise((resolve) => {
    const sequences = [];
    let sample = null;
    const call = client.Subscribe({ kinds: [], fromSequence: '0' }, metadata());
    call.on('data', (record) => {
      sequences.push(record.sequence);
      if (!sample) sample = record;
      if (sequences.length === wanted) call.cancel();
    });
    call.on('error', (err) => resolve({ sequences, sample, code: err.code, details: err.details }));
    call.on('end', () => resolve({ sequences, sample, code: 0 }));
  });
}

function unknownMethod() {
  return new Promise((resolve) => {
    const identity = (x) => x;
    client.makeUnaryRequest('/ebpf.v1.ExecTrace/NoSuchMethod', identity, identity, Buffer.alloc(0), metadata(), {},
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0 }));
  });
}

(async () => {
  const result = {};
  result.subscribe = await subscribe();
  result.listSessions = await unary('ListSessions', { user: 'alice' });
  result.getStatus = await unary('GetStatus', {});
  result.getSessionUnknown = await unary('GetSession', { id: 'does-not-exist' });
  result.getSessionSleeping = await unary('GetSession', { id: 'sleep-forever' }, 300);
  result.unknownMethod = await unknownMethod();
  client.close();
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
