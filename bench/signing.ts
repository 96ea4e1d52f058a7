// The CA's signing rate: `node dist/bench/signing.js` (or BENCH_MODES=signing through
// `npm run bench`). For EC P-256 and RSA-2048 (CA key and CSR keys of the same type),
// CSRs are made by openssl before timing; each timed request is what CreateCertificate
// does after authentication: parse the CSR, verify its self-signature, check its SAN
// against the caller's identity, build and sign the certificate, PEM-encode the chain.
// Requests run one after another (never two at once), so at most one core works at a time.
//
// Also: the cost of each stage, and the same request done with node-forge alone (RSA only:
// forge has no ECDSA) to show why the signature is left to node:crypto.
//
// Knobs: BENCH_SIGNING_SECONDS (timed seconds per key type, default 5), BENCH_SIGNING_CSRS
// (distinct CSRs per key type, default 32). Writes bench/results/signing.json.
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sign as cryptoSign } from 'node:crypto';
import type * as Forge from 'node-forge';
import { CertificateAuthority } from '../src/ca/ca.js';
import { generateSelfSignedRoot, loadRootOfTrust } from '../src/ca/root-of-trust.js';
import { parseCsr, verifyCsrSignatureSync } from '../src/ca/csr.js';
import { signatureAlgorithmFor, type CaKeyType } from '../src/ca/keys.js';
import { emptyName, tbsCertificate, certificatePem, keyUsage, subjectAltName, type Issuer } from '../src/ca/x509-builder.js';
import { opensslCsr, type TestKeyAlg } from '../test/support/openssl.js';
import { fmtMs, percentile, table } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(resolve(here, '..', '..'), 'bench', 'results');
const SECONDS = Number(process.env.BENCH_SIGNING_SECONDS ?? 5);
const CSRS = Number(process.env.BENCH_SIGNING_CSRS ?? 32);
const IDENTITY = 'spiffe://cluster.local/ns/bench/sa/client';

export const SIGNING_TARGETS: Record<string, number> = { 'ec-p256': 500, 'rsa-2048': 150 };

export interface SigningResult {
  keyType: CaKeyType;
  certsPerSecond: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU seconds (user + system, all threads) per wall second while timing: at most ~1 for one core. */
  cpuPerWallSecond: number;
  targetPerSecond: number;
  /** Mean microseconds of each stage, measured apart (synchronous, same inputs). */
  stagesUs: Record<string, number>;
  /** node-forge alone (parse, verify, build, RSA sign, PEM), certificates per second; RSA only. */
  forgeOnlyPerSecond?: number;
}

function meanUs(n: number, f: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 20); i++) f(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(i);
  return Number(process.hrtime.bigint() - t) / 1e3 / n;
}

function forgeOnlyRate(csrs: string[], caMaterial: { caCertPem: string; caKeyPem: string }, seconds: number): number {
  const forge = createRequire(import.meta.url)('node-forge') as typeof Forge;
  const caCert = forge.pki.certificateFromPem(caMaterial.caCertPem);
  const caKey = forge.pki.privateKeyFromPem(caMaterial.caKeyPem);
  const one = (csrPem: string): string => {
    const csr = forge.pki.certificationRequestFromPem(csrPem);
    if (!csr.verify()) throw new Error('CSR does not verify');
    const c = forge.pki.createCertificate();
    c.publicKey = csr.publicKey!;
    c.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(15));
    c.validity.notBefore = new Date(Date.now() - 60_000);
    c.validity.notAfter = new Date(Date.now() + 86_400_000);
    c.setIssuer(caCert.subject.attributes);
    c.setExtensions([
      { name: 'subjectAltName', critical: true, altNames: [{ type: 6, value: IDENTITY }] },
      { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    ]);
    c.sign(caKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(c);
  };
  one(csrs[0]!);
  let n = 0;
  const t = performance.now();
  while (performance.now() - t < seconds * 1000) one(csrs[n++ % csrs.length]!);
  return n / ((performance.now() - t) / 1000);
}

export async function runSigning(log: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): Promise<SigningResult[]> {
  const out: SigningResult[] = [];
  for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
    const csrAlg: TestKeyAlg = keyType;
    log(`signing: ${keyType}: making ${CSRS} CSRs with openssl...`);
    const csrs = Array.from({ length: CSRS }, () => opensslCsr({ alg: csrAlg, sans: [`URI:${IDENTITY}`] }).csrPem);
    const material = generateSelfSignedRoot({ keyType, trustDomain: 'cluster.local' });
    const root = loadRootOfTrust(material, 'bench');
    const ca = new CertificateAuthority({ rootOfTrust: root, trustDomain: 'cluster.local', source: 'bench' });

    // Warm up, then one request at a time for SECONDS.
    for (let i = 0; i < 50; i++) await ca.sign(csrs[i % csrs.length]!, { identity: IDENTITY });
    const latencies: number[] = [];
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    while (performance.now() - start < SECONDS * 1000) {
      const t = performance.now();
      await ca.sign(csrs[latencies.length % csrs.length]!, { identity: IDENTITY });
      latencies.push(performance.now() - t);
    }
    const wall = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);

    // Stages, apart.
    const parsed = csrs.map((c) => parseCsr(c));
    const issuer: Issuer = { name: root.signing.subject, key: root.signingKey, algorithm: signatureAlgorithmFor(root.signingKey) };
    const spec = (i: number) => ({
      subject: emptyName(),
      subjectPublicKeyInfo: parsed[i % parsed.length]!.subjectPublicKeyInfo,
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86_400_000),
      extensions: [keyUsage({ digitalSignature: true, keyEncipherment: true }), subjectAltName({ uris: [IDENTITY] }, true)],
    });
    const tbs = tbsCertificate(spec(0), issuer);
    const n = keyType === 'ec-p256' ? 2000 : 300;
    const stagesUs = {
      'parse CSR (forge ASN.1 + node:crypto key import)': meanUs(n, (i) => parseCsr(csrs[i % csrs.length]!)),
      'verify CSR signature (node:crypto)': meanUs(n, (i) => verifyCsrSignatureSync(parsed[i % parsed.length]!)),
      'build TBSCertificate (forge ASN.1)': meanUs(n, (i) => tbsCertificate(spec(i), issuer)),
      'sign (node:crypto)': meanUs(n, () => cryptoSign(issuer.algorithm.hash, tbs, issuer.key)),
      'PEM': meanUs(n, () => certificatePem(tbs)),
    };
    const r: SigningResult = {
      keyType,
      certsPerSecond: latencies.length / wall,
      requests: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      cpuPerWallSecond: (cpu.user + cpu.system) / 1e6 / wall,
      targetPerSecond: SIGNING_TARGETS[keyType]!,
      stagesUs,
    };
    if (keyType === 'rsa-2048') {
      log('signing: rsa-2048: the same with node-forge alone...');
      r.forgeOnlyPerSecond = forgeOnlyRate(csrs, material, Math.min(SECONDS, 3));
    }
    out.push(r);
  }
  return out;
}

export function signingReport(results: SigningResult[]): string {
  const rows = results.map((r) => [
    r.keyType,
    r.certsPerSecond.toFixed(0),
    `${r.targetPerSecond} ${r.certsPerSecond >= r.targetPerSecond ? 'PASS' : 'MISS'}`,
    fmtMs(r.p50Ms),
    fmtMs(r.p99Ms),
    r.cpuPerWallSecond.toFixed(2),
    r.forgeOnlyPerSecond !== undefined ? r.forgeOnlyPerSecond.toFixed(0) : 'n/a (no ECDSA)',
  ]);
  const stages = results.flatMap((r) => Object.entries(r.stagesUs).map(([k, v]) => [r.keyType, k, `${v.toFixed(1)} µs`]));
  return [
    'CA signing, one request at a time (CSR parse + signature check + SAN check + sign + PEM):',
    table(['key (CA and CSR)', 'certs/s', 'target', 'p50', 'p99', 'CPU/wall', 'forge alone certs/s'], rows),
    '',
    'stages, measured apart:',
    table(['key', 'stage', 'mean'], stages),
  ].join('\n');
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const results = await runSigning();
  const text = signingReport(results);
  process.stdout.write(`\n${text}\n`);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'signing.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, seconds: SECONDS, csrs: CSRS, results, table: text }, null, 2) + '\n');
  // A missed target is reported (MISS), not an error, as in bench/run.ts.
  process.exit(0);
}
