// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. BENCH_PROFILE=1 npm run bench):
// self time by function and by file, and inclusive time of selected functions, optionally
// restricted to a time window.
//   node dist/bench/profile-summary.js <file.cpuprofile> [top=30] [fromSec] [toSec]
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: profile-summary.js <file.cpuprofile> [top] [fromSec] [toSec]');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url: string): string => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'nm:').replace(/.*\/dist\//, '');
const label = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${short(f.url)}:${f.lineNumber + 1}`;

const from = fromArg !== undefined ? Number(fromArg) * 1e6 : -Infinity;
const to = toArg !== undefined ? Number(toArg) * 1e6 : Infinity;
const self = new Map<string, number>();
const byFile = new Map<string, number>();
const inclusive = new Map<string, number>();
/** Busy microseconds per second of the profile. */
const timeline: number[] = [];
let t = 0;
let total = 0;
let idle = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  if (t < from || t > to) continue;
  const n = byId.get(p.samples[i]!)!;
  total += dt;
  const name = n.callFrame.functionName;
  if (name === '(idle)') {
    idle += dt;
    continue;
  }
  const sec = Math.floor(t / 1e6);
  timeline[sec] = (timeline[sec] ?? 0) + dt;
  const l = label(n.callFrame);
  self.set(l, (self.get(l) ?? 0) + dt);
  const f = short(n.callFrame.url) || name;
  byFile.set(f, (byFile.get(f) ?? 0) + dt);
  const seen = new Set<string>();
  for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
    const k = label(byId.get(id)!.callFrame);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  }
}
const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const pct = (us: number): string => `${((100 * us) / Math.max(1, total - idle)).toFixed(1).padStart(5)}%`;
console.log(`window ${(total / 1e6).toFixed(1)} s, busy ${((total - idle) / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s`);
console.log(`busy per second: ${Array.from(timeline, (v) => Math.round((v ?? 0) / 1e4)).join(' ')} (%)`);
console.log('\nself time by function:');
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
console.log('\nself time by file:');
for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
console.log('\ninclusive time (src/ and bench/ functions):');
for (const [k, v] of [...inclusive].filter(([k]) => / (src|bench)\//.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
