// The transport floor under the traffic-management case: a bare grpc-js server writes one
// already-encoded message of N bytes to 1000 streams (20 at a time, as meshd does), and a
// client process shaped like ads-clients.ts (20 channels x 50 streams, 64 MiB windows)
// timestamps each arrival and answers it. No translation, no diffing, no xDS: what is
// left is gRPC, HTTP/2 and the sockets, on this machine. meshd cannot push a route of that
// size to 1000 clients faster than this.
//
//   node dist/bench/transport-floor.js [bytes=565000] [pushes=4]
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { rawMethod } from '../src/util/raw-grpc.js';

const METHOD = '/meshd.bench.Floor/Stream';
const passthrough = (b: Buffer): Buffer => b;
const DEFINITION: grpc.ServiceDefinition = { Stream: rawMethod(METHOD, { request: true, response: true }) };
const CLIENTS = 1000;
const PER_CHANNEL = 50;
const CONCURRENCY = 20;

type Msg = { port?: number; pushed?: { ms: number; cpuMs: number }; arrivals?: { n: number; p50: number; p99: number; cpuMs: number }; cmd?: string };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

function serverRole(bytes: number): void {
  const calls: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
  const server = new grpc.Server({ 'grpc.max_send_message_length': -1 });
  server.addService(DEFINITION, {
    Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      calls.push(call);
      call.on('data', () => undefined);
    },
  });
  const message = Buffer.alloc(bytes, 7);
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.send!({ port });
  });
  process.on('message', (m: Msg) => {
    if (m.cmd !== 'push') return;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < calls.length) {
        const call = calls[next++]!;
        await new Promise<void>((resolve) => call.write(message, () => resolve()));
      }
    };
    void Promise.all(Array.from({ length: CONCURRENCY }, worker)).then(() => {
      const cpu = process.cpuUsage(cpu0);
      process.send!({ pushed: { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 } });
    });
  });
}

function clientRole(port: number): void {
  let arrivals: number[] = [];
  let t0 = 0;
  let cpu0 = process.cpuUsage();
  let channel: grpc.Client | undefined;
  for (let i = 0; i < CLIENTS; i++) {
    if (i % PER_CHANNEL === 0) channel = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc-node.flow_control_window': 64 * 1024 * 1024, 'grpc.max_receive_message_length': -1 });
    const call = channel!.makeBidiStreamRequest(METHOD, passthrough, passthrough);
    call.on('data', () => {
      arrivals.push(performance.now());
      call.write(Buffer.from('ack'));
    });
    call.on('error', () => undefined);
    call.write(Buffer.from('hello'));
  }
  process.on('message', (m: Msg) => {
    if (m.cmd === 'arm') {
      arrivals = [];
      t0 = performance.now();
      cpu0 = process.cpuUsage();
    } else if (m.cmd === 'report') {
      const s = arrivals.map((a) => a - t0).sort((a, b) => a - b);
      const cpu = process.cpuUsage(cpu0);
      process.send!({ arrivals: { n: s.length, p50: percentile(s, 0.5), p99: percentile(s, 0.99), cpuMs: (cpu.user + cpu.system) / 1000 } });
    }
  });
}

function next(child: ReturnType<typeof fork>, has: (m: Msg) => boolean): Promise<Msg> {
  return new Promise((resolve) => {
    const on = (m: Msg): void => {
      if (!has(m)) return;
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
  });
}

async function main(): Promise<void> {
  const bytes = Number(process.argv[2] ?? 565_000);
  const pushes = Number(process.argv[3] ?? 4);
  const self = fileURLToPath(import.meta.url);
  const server = fork(self, ['--role=server', String(bytes)]);
  const { port } = await next(server, (m) => m.port !== undefined);
  const client = fork(self, ['--role=client', String(port)]);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    console.log(`transport floor: one ${bytes}-byte message to ${CLIENTS} grpc-js streams (${CLIENTS / PER_CHANNEL} channels), ${CONCURRENCY} writes in flight`);
    for (let k = 0; k < pushes; k++) {
      client.send({ cmd: 'arm' });
      await new Promise((r) => setTimeout(r, 50));
      server.send({ cmd: 'push' });
      const { pushed } = await next(server, (m) => m.pushed !== undefined);
      await new Promise((r) => setTimeout(r, 1500));
      client.send({ cmd: 'report' });
      const { arrivals } = await next(client, (m) => m.arrivals !== undefined);
      console.log(
        `  push ${k + 1}: all written in ${pushed!.ms.toFixed(0)} ms (server CPU ${pushed!.cpuMs.toFixed(0)} ms); ${arrivals!.n} arrived, p50 ${arrivals!.p50.toFixed(0)} ms, p99 ${arrivals!.p99.toFixed(0)} ms (client CPU ${arrivals!.cpuMs.toFixed(0)} ms)`,
      );
    }
  } finally {
    server.kill();
    client.kill();
  }
}

const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
if (role === 'server') serverRole(Number(process.argv.at(-1)));
else if (role === 'client') clientRole(Number(process.argv.at(-1)));
else await main();
