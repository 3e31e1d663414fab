// Throughput reader for bench/Ebpf.Bench.Grpc: K concurrent Subscribe streams of N records each (the bench server
// streams N prebuilt records when the bench-count header is set). Prints {"received":..,"seconds":..}.
// Usage: node bench.js <host:port> <protos dir> <records per stream> <streams> [objects|messages|bytes]
// The decode mode says what the client does with each record, because in node that, not grpc-js's transport, is the
// cost that bounds the rate:
//   objects  — @grpc/proto-loader's deserializer: decode, then toObject() into plain JS objects with 64-bit integers
//              as strings (what interop.js and most grpc-js users do; the default);
//   messages — protobufjs decode into message instances only (what an analyzer that reads a few fields would do);
//   bytes    — no decoding: grpc-js framing and HTTP/2 only (the transport's ceiling).
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const [target, protosDir, perText, streamsText, mode = 'objects'] = process.argv.slice(2);
const per = Number(perText);
const streams = Number(streamsText);
// An 8 MiB receive window, as our client uses (GrpcClient.CreateHandler): with node's 64 KiB default the server stalls
// for a WINDOW_UPDATE every ~200 records.
const channelOptions = { 'grpc.max_receive_message_length': 4 << 20, 'grpc-node.flow_control_window': 8 << 20 };

function createClient() {
  if (mode === 'objects') {
    const definition = protoLoader.loadSync('ebpf/v1/exectrace.proto', { includeDirs: [protosDir], longs: String, enums: String, defaults: false, oneofs: true });
    const ebpf = grpc.loadPackageDefinition(definition).ebpf.v1;
    return new ebpf.ExecTrace(target, grpc.credentials.createInsecure(), channelOptions);
  }
  if (mode !== 'messages' && mode !== 'bytes') throw new Error(`unknown decode mode ${mode}: objects, messages or bytes`);
  const root = new protobuf.Root();
  root.resolvePath = (origin, file) => (path.isAbsolute(file) ? file : path.join(protosDir, file));
  root.loadSync('ebpf/v1/exectrace.proto', { keepCase: true });
  const request = root.lookupType('ebpf.v1.SubscribeRequest');
  const record = root.lookupType('ebpf.v1.Record');
  const Client = grpc.makeGenericClientConstructor({
    Subscribe: {
      path: '/ebpf.v1.ExecTrace/Subscribe',
      requestStream: false,
      responseStream: true,
      requestSerialize: (value) => Buffer.from(request.encode(request.fromObject(value)).finish()),
      responseDeserialize: mode === 'messages' ? (bytes) => record.decode(bytes) : (bytes) => bytes,
    },
  }, 'ExecTrace');
  return new Client(target, grpc.credentials.createInsecure(), channelOptions);
}

const client = createClient();

function one() {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set('bench-count', String(per));
    let received = 0;
    const call = client.Subscribe({}, md);
    call.on('data', () => { received++; });
    call.on('error', reject);
    call.on('end', () => resolve(received));
  });
}

(async () => {
  const start = process.hrtime.bigint();
  const counts = await Promise.all(Array.from({ length: streams }, one));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  client.close();
  process.stdout.write(JSON.stringify({ received: counts.reduce((a, b) => a + b, 0), seconds }) + '\n');
})().catch((err) => { process.stderr.write(String(err && err.stack || err) + '\n'); process.exit(1); });
