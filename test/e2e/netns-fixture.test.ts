/**
 * Proves the netns "pod" fixture with real TCP traffic and no Envoy: stand-in
 * listeners on 15001/15006 (run as the proxy uid) show what gets captured.
 * Needs root and iptables; fails (never skips) otherwise.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { createPod, destroyAllPods, type Pod } from '../support/netns.js';

const execFileP = promisify(execFile);
const NODE = process.execPath;
const PROXY_UID = 1337;

/** TEST-NET-3: redirected inside the pod, and otherwise stopped by the pod's egress guard. */
const OUTSIDE_IP = '203.0.113.10';

/** Listens on each `port=reply` pair given as arguments, prints "ready" once all are bound. */
const SERVER_SCRIPT = `
const net = require('node:net');
const specs = process.argv.slice(1).map((a) => a.split('='));
let pending = specs.length;
for (const [port, reply] of specs) {
  net.createServer((s) => { s.on('error', () => {}); s.end(reply); })
    .listen(Number(port), '0.0.0.0', () => { if (--pending === 0) console.log('ready'); });
}
`;

/** Connects to argv host:port, prints what the server sent, or "ERROR:<code>". */
const CLIENT_SCRIPT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
let data = '';
const s = net.connect({ host, port: Number(port) });
s.setTimeout(5000, () => { console.log('ERROR:TIMEOUT'); process.exit(3); });
s.setEncoding('utf8');
s.on('data', (d) => { data += d; });
s.on('end', () => { console.log(data); process.exit(0); });
s.on('error', (e) => { console.log('ERROR:' + (e.code || e.message)); process.exit(3); });
`;

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready in 10 s: ${out} ${err}`)), 10_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${err}`));
    });
  });
}

/** Run the client inside the pod and return what it printed. */
async function connectFromPod(pod: Pod, host: string, port: number, uid?: number): Promise<string> {
  const opts = uid === undefined ? {} : { uid };
  const r = await pod.exec([NODE, '-e', CLIENT_SCRIPT, host, String(port)], { ...opts, timeoutMs: 15_000 });
  assert.equal(r.stderr, '', `client stderr: ${r.stderr}`);
  return r.stdout.trim();
}

/** Connect from the host (this process) and return what the server sent. */
function connectFromHost(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const s = net.connect({ host, port });
    s.setTimeout(5000, () => {
      s.destroy();
      reject(new Error(`timeout connecting to ${host}:${port}`));
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

async function netnsNames(): Promise<string[]> {
  const { stdout } = await execFileP('ip', ['netns', 'list']);
  return stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '');
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await execFileP('ip', ['link', 'show', name]);
    return true;
  } catch {
    return false;
  }
}

describe('netns pod fixture with Istio-style capture', () => {
  let pod: Pod;
  let backend: net.Server;
  let backendPort: number;

  before(async () => {
    pod = await createPod({ name: 'fixture', proxyUid: PROXY_UID });

    // Stand-in for Envoy: runs as the proxy uid, like the sidecar.
    const proxy = pod.spawn([NODE, '-e', SERVER_SCRIPT, '15001=captured-outbound', '15006=captured-inbound'], {
      uid: PROXY_UID,
    });
    // The application container: runs as root (uid 0), listens on 8080.
    const app = pod.spawn([NODE, '-e', SERVER_SCRIPT, '8080=app']);
    await Promise.all([waitReady(proxy, 'proxy stand-in'), waitReady(app, 'app')]);

    backend = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end('backend');
    });
    await new Promise<void>((resolve) => backend.listen(0, pod.hostIp, resolve));
    backendPort = (backend.address() as net.AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
    await destroyAllPods();
  });

  it('allocates a /30 in 198.18.0.0/15 and installs Istio chains', async () => {
    assert.match(pod.podIp, /^198\.(18|19)\./);
    assert.match(pod.hostIp, /^198\.(18|19)\./);
    assert.match(pod.netns, new RegExp(`^meshd-fixture-${process.pid}$`));
    const rules = await pod.iptablesRules();
    for (const chain of ['ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT', 'ISTIO_INBOUND']) {
      assert.match(rules, new RegExp(`^:${chain} `, 'm'), `chain ${chain} missing:\n${rules}`);
    }
    assert.match(rules, /-A OUTPUT -p tcp -j ISTIO_OUTPUT/);
    assert.match(rules, /-A PREROUTING -p tcp -j ISTIO_INBOUND/);
    assert.match(rules, new RegExp(`-A ISTIO_OUTPUT -m owner --uid-owner ${PROXY_UID} -j RETURN`));
    assert.match(rules, /-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    assert.match(rules, /-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);
  });

  it('captures outbound traffic of the app (uid 0) to 15001', async () => {
    assert.equal(await connectFromPod(pod, OUTSIDE_IP, 80), 'captured-outbound');
    assert.equal(await connectFromPod(pod, pod.hostIp, backendPort), 'captured-outbound');
  });

  it('does not capture the proxy uid: it reaches the real backend on the host', async () => {
    assert.equal(await connectFromPod(pod, pod.hostIp, backendPort, PROXY_UID), 'backend');
  });

  it('leaves loopback traffic alone', async () => {
    assert.equal(await connectFromPod(pod, '127.0.0.1', 8080), 'app');
  });

  it('captures inbound traffic to 15006; the proxy uid reaches the app directly', async () => {
    assert.equal(await connectFromHost(pod.podIp, 8080), 'captured-inbound');
    assert.equal(await connectFromPod(pod, pod.podIp, 8080, PROXY_UID), 'app');
  });

  it('keeps uncaptured traffic from leaving the machine (egress guard)', async () => {
    const out = await connectFromPod(pod, OUTSIDE_IP, 80, PROXY_UID);
    assert.match(out, /^ERROR:/);
    assert.notEqual(out, 'ERROR:TIMEOUT', 'the guard should reject, not drop');
  });

  it('exec reports exit codes, stdout, stderr and the requested uid', async () => {
    const r = await pod.exec(
      [NODE, '-e', 'console.log(process.getuid(), process.env.FOO); console.error("oops"); process.exit(7)'],
      { uid: PROXY_UID, env: { FOO: 'bar' } },
    );
    assert.deepEqual(r, { code: 7, stdout: `${PROXY_UID} bar\n`, stderr: 'oops\n' });
  });
});

describe('netns pod fixture lifecycle', () => {
  after(destroyAllPods);

  it('supports several pods, honours captureInbound=false, and destroy() removes everything', async () => {
    const a = await createPod({ name: 'life-a', proxyUid: PROXY_UID, captureInbound: false });
    const b = await createPod({ name: 'life-b', proxyUid: PROXY_UID, captureOutbound: false });
    assert.notEqual(a.podIp, b.podIp);
    assert.notEqual(a.hostIp, b.hostIp);

    const app = a.spawn([NODE, '-e', SERVER_SCRIPT, '8080=app-a']);
    await waitReady(app, 'app in pod a');
    assert.equal(await connectFromHost(a.podIp, 8080), 'app-a', 'inbound must not be captured');
    assert.doesNotMatch(await a.iptablesRules(), /-A PREROUTING -p tcp -j ISTIO_INBOUND/);

    // Pod b (no outbound capture) reaches pod a's app through the host.
    assert.equal(await connectFromPod(b, a.podIp, 8080), 'app-a');
    assert.doesNotMatch(await b.iptablesRules(), /-A OUTPUT -p tcp -j ISTIO_OUTPUT/);

    assert.ok((await netnsNames()).includes(a.netns));
    await a.destroy();
    await a.destroy(); // idempotent
    assert.ok(!(await netnsNames()).includes(a.netns), 'namespace still present');
    assert.ok(!(await linkExists(a.hostVeth)), 'host veth still present');
    assert.ok(app.exitCode !== null || app.signalCode !== null, 'spawned process still running');

    // Leftover of a "crashed" run with the same name is replaced, not an error.
    const leftover = `meshd-life-b-${process.pid}`;
    assert.equal(leftover, b.netns);
    await b.destroy();
    await execFileP('ip', ['netns', 'add', leftover]);
    const b2 = await createPod({ name: 'life-b', proxyUid: PROXY_UID });
    assert.equal(b2.netns, leftover);
    await b2.destroy();
    assert.ok(!(await netnsNames()).includes(leftover));
  });
});
