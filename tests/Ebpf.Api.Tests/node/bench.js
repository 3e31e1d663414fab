// Throughput reader for bench/Ebpf.Bench.Grpc: K concurrent Subscribe streams of N records each (the bench server
// streams N prebuilt records when the bench-count header is set). Prints {"received":..,"seconds":..}.
// Usage: node bench.js <host:port> <protos dir> <records per stream> <streams>
'use strict';
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [target, protosDir, perText, streamsText] = process.argv.slice(2);
const per = Number(perText);
const streams = Number(streamsText);
const definition = protoLoader.loadSync('ebpf/v1/exectrace.proto', { includeDirs: [protosDir], longs: String, enums: String, defaults: false, oneofs: true });
const ebpf = grpc.loadPackageDefinition(definition).ebpf.v1;
// An 8 MiB receive window, as our client uses (GrpcClient.CreateHandler): with node's 64 KiB default the server stalls
// for a WINDOW_UPDATE every ~200 records.
const client = new ebpf.ExecTrace(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 4 << 20, 'grpc-node.flow_control_window': 8 << 20 });

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
