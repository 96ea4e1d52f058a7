// Runs the real `meshd serve` (the built CLI) as a child process for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/test/support -> repo root */
export const REPO_ROOT = resolve(here, '..', '..', '..');
export const MESHD_CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface MeshdProcess {
  grpcPort: number;
  /** The TLS gRPC port (xDS and CA), on 127.0.0.1. */
  secureGrpcPort: number;
  monitoringPort: number;
  configDir: string;
  xdsAddress: string;
  /** Writes (or replaces) a YAML file in the config directory. */
  writeConfig(file: string, yaml: string): void;
  removeConfig(file: string): void;
  /** GET on the monitoring port; returns status and body text. */
  monitoring(path: string): Promise<{ status: number; body: string }>;
  logs(): string;
  /** Log records (JSON lines) so far. */
  records(): Record<string, unknown>[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  process: ChildProcess;
}

export interface StartMeshdOptions {
  /** Files to write into a fresh config directory before start. */
  files?: Record<string, string>;
  configDir?: string;
  grpcPort?: number;
  secureGrpcPort?: number;
  webhookPort?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Resolve only once meshd serves its first snapshot (default true). */
  waitForConfig?: boolean;
}

export function httpText(port: number, path: string, host = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host, port, path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function startMeshd(o: StartMeshdOptions = {}): Promise<MeshdProcess> {
  const configDir = o.configDir ?? mkdtempSync(join(tmpdir(), 'meshd-config-'));
  const ownDir = o.configDir === undefined;
  for (const [name, text] of Object.entries(o.files ?? {})) writeFileSync(join(configDir, name), text);
  const args = [
    MESHD_CLI,
    'serve',
    '--config-dir',
    configDir,
    '--grpc-addr',
    `127.0.0.1:${o.grpcPort ?? 0}`,
    '--secure-grpc-addr',
    `127.0.0.1:${o.secureGrpcPort ?? 0}`,
    '--webhook-addr',
    `127.0.0.1:${o.webhookPort ?? 0}`,
    '--monitoring-addr',
    '127.0.0.1:0',
    '--debounce-after',
    '20ms',
    '--debounce-max',
    '200ms',
    // Tests stop meshd with SIGTERM many times: no gradual drain unless a test asks for one.
    '--drain-duration',
    '0s',
    ...(o.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(o.env ?? {}) } });
  let output = '';
  const records: Record<string, unknown>[] = [];
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    output += text;
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log record */
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const ports = await new Promise<{ grpc: number; secureGrpc: number; monitoring: number }>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`meshd did not start within 30s:\n${output}`)), 30_000);
    const check = (): void => {
      const rec = records.find((r) => r.msg === 'meshd serving');
      if (rec && (o.waitForConfig === false || records.some((r) => r.msg === 'serving configuration'))) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        child.stderr!.off('data', check);
        resolvePromise({ grpc: Number(String(rec.grpc).split(':').pop()), secureGrpc: Number(String(rec.secureGrpc).split(':').pop()), monitoring: Number(String(rec.monitoring).split(':').pop()) });
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`meshd exited with ${code} before serving:\n${output}`));
    });
  });
  let exited: Promise<number | null> | undefined;
  return {
    grpcPort: ports.grpc,
    secureGrpcPort: ports.secureGrpc,
    monitoringPort: ports.monitoring,
    configDir,
    xdsAddress: `127.0.0.1:${ports.grpc}`,
    process: child,
    writeConfig(file, yaml) {
      // Write to a temp name and rename, as editors and kubectl-style tools do, so meshd never reads half a file.
      const tmp = join(configDir, `.${file}.tmp`);
      writeFileSync(tmp, yaml);
      renameSync(tmp, join(configDir, file));
    },
    removeConfig(file) {
      rmSync(join(configDir, file), { force: true });
    },
    monitoring: (path) => httpText(ports.monitoring, path),
    logs: () => output,
    records: () => records,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      exited ??= new Promise<number | null>((resolvePromise) => {
        if (child.exitCode !== null) return resolvePromise(child.exitCode);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          if (ownDir) rmSync(configDir, { recursive: true, force: true });
          resolvePromise(code);
        });
        child.kill(signal);
      });
      return exited;
    },
  };
}

/** Renders a Service and one EndpointSlice for it, as a cluster would hold them. */
export function serviceYaml(o: {
  name: string;
  namespace?: string;
  clusterIP?: string;
  ports: { name: string; port: number; targetPort?: number; appProtocol?: string }[];
  endpoints: { ip: string; ready?: boolean; pod?: string }[];
  /** Port numbers the endpoints listen on, by port name; defaults to targetPort or port. */
  endpointPorts?: Record<string, number>;
  selector?: Record<string, string>;
}): string {
  const ns = o.namespace ?? 'default';
  const selector = o.selector ?? { app: o.name };
  const svc = [
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    `  name: ${o.name}`,
    `  namespace: ${ns}`,
    'spec:',
    ...(o.clusterIP ? [`  clusterIP: ${o.clusterIP}`] : []),
    '  selector:',
    ...Object.entries(selector).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`),
    '  ports:',
    ...o.ports.flatMap((p) => [`  - name: ${p.name}`, `    port: ${p.port}`, ...(p.targetPort ? [`    targetPort: ${p.targetPort}`] : []), ...(p.appProtocol ? [`    appProtocol: ${p.appProtocol}`] : [])]),
  ];
  const slice = [
    'apiVersion: discovery.k8s.io/v1',
    'kind: EndpointSlice',
    'metadata:',
    `  name: ${o.name}-slice`,
    `  namespace: ${ns}`,
    '  labels:',
    `    kubernetes.io/service-name: ${o.name}`,
    'addressType: IPv4',
    'ports:',
    ...o.ports.flatMap((p) => [`- name: ${p.name}`, `  port: ${o.endpointPorts?.[p.name] ?? p.targetPort ?? p.port}`]),
    o.endpoints.length ? 'endpoints:' : 'endpoints: []',
    ...o.endpoints.flatMap((e) => [
      `- addresses: ["${e.ip}"]`,
      '  conditions:',
      `    ready: ${e.ready ?? true}`,
      ...(e.pod ? ['  targetRef:', '    kind: Pod', `    name: ${e.pod}`, `    namespace: ${ns}`] : []),
    ]),
  ];
  return `${svc.join('\n')}\n---\n${slice.join('\n')}\n`;
}
