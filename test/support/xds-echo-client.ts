// A proxyless gRPC client for e2e tests, run as its own process: grpc-js-xds reads
// GRPC_XDS_BOOTSTRAP when it is registered and keeps one xDS client per process.
//
//   node dist/test/support/xds-echo-client.js <target> [--calls N]
//
// With --calls it makes N sequential calls, prints one JSON summary line and exits.
// Without it, it keeps one channel open and reads commands from stdin, one per line:
// `{"calls": N}` makes N calls and prints a summary line; end of input exits.
// A summary is {"ok", "failed", "byBackend": {name: count}, "errors": [...], "ms"}.
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { createInterface } from 'node:readline';
import { CALL_DEADLINE_MS, ECHO_SAY_PATH, type CallSummary } from './grpc-backend.js';

function say(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      ECHO_SAY_PATH,
      (b) => b,
      (b) => b,
      Buffer.from('hello', 'utf8'),
      { deadline: Date.now() + CALL_DEADLINE_MS },
      (err, reply) => (err ? reject(err) : resolve(reply ? reply.toString('utf8') : '')),
    );
  });
}

async function batch(client: grpc.Client, n: number): Promise<CallSummary> {
  const start = Date.now();
  const out: CallSummary = { ok: 0, failed: 0, byBackend: {}, errors: [], ms: 0 };
  for (let i = 0; i < n; i++) {
    try {
      const who = await say(client);
      out.ok++;
      out.byBackend[who] = (out.byBackend[who] ?? 0) + 1;
    } catch (e) {
      out.failed++;
      const err = e as grpc.ServiceError;
      const text = `${grpc.status[err.code] ?? err.code}: ${err.details ?? err.message}`;
      if (out.errors.length < 10 && !out.errors.includes(text)) out.errors.push(text);
    }
  }
  out.ms = Date.now() - start;
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const target = args[0];
  if (!target) throw new Error('usage: xds-echo-client <xds:///host:port> [--calls N]');
  const callsAt = args.indexOf('--calls');
  grpcXds.register();
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  if (callsAt >= 0) {
    const n = Number(args[callsAt + 1]);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--calls: "${args[callsAt + 1]}" is not a positive integer`);
    process.stdout.write(JSON.stringify(await batch(client, n)) + '\n');
    client.close();
    return;
  }
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as { calls?: number };
    process.stdout.write(JSON.stringify(await batch(client, cmd.calls ?? 1)) + '\n');
  }
  client.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`xds-echo-client: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
