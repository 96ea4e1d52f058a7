// Local, non-loopback addresses for test backends. Kubernetes refuses loopback
// addresses in EndpointSlices, so backends that the apiserver must accept listen on
// extra addresses of the `lo` interface: 198.19.255.<n>/32 (the RFC 2544 benchmark
// range, at the end the network-namespace fixture does not allocate from). Traffic to
// them never leaves this machine. (A dummy interface would do too, but this kernel
// has no dummy driver.)
import { execFileSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';

const INTERFACE = 'lo';

/** Returns `count` local addresses from 198.19.255.<first>, adding them to `lo` as needed (needs root). */
export function testAddresses(count: number, first = 1): string[] {
  const wanted = Array.from({ length: count }, (_, i) => `198.19.255.${i + first}`);
  const present = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)));
  if (wanted.every((a) => present.has(a))) return wanted;
  try {
    for (const a of wanted) if (!present.has(a)) execFileSync('ip', ['addr', 'add', `${a}/32`, 'dev', INTERFACE], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`cannot create test addresses on ${INTERFACE} (needs root and iproute2; run npm run provision): ${String((err as { stderr?: Buffer }).stderr ?? err)}`, { cause: err });
  }
  return wanted;
}
