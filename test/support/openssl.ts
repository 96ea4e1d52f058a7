// CSRs, CAs and chain verification made with the openssl command-line tool, so that the
// CA is checked against an independent X.509 implementation.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type TestKeyAlg = 'ec-p256' | 'ec-p384' | 'rsa-1024' | 'rsa-2048' | 'rsa-3072';

function keyArgs(alg: TestKeyAlg): string[] {
  if (alg === 'ec-p256') return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  if (alg === 'ec-p384') return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1'];
  return ['-newkey', `rsa:${alg.slice('rsa-'.length)}`];
}

function withDir<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-openssl-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A CSR made by `openssl req`: SAN entries like "URI:spiffe://..." or "DNS:x" (critical when the subject is empty). */
export function opensslCsr(o: { alg?: TestKeyAlg; sans?: string[]; subject?: string }): { csrPem: string; keyPem: string } {
  return withDir((dir) => {
    const subject = o.subject ?? '/';
    const args = ['req', '-new', ...keyArgs(o.alg ?? 'ec-p256'), '-nodes', '-subj', subject, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem')];
    if (o.sans?.length) args.push('-addext', `subjectAltName=${subject === '/' ? 'critical,' : ''}${o.sans.join(',')}`);
    execFileSync('openssl', args, { stdio: 'pipe' });
    return { csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  });
}

/** `openssl verify -CAfile root [-untrusted intermediates] leaf`; ok with openssl's output. */
export function opensslVerify(rootPem: string, leafPem: string, intermediatesPem: string[] = [], purpose?: 'sslserver' | 'sslclient'): { ok: boolean; output: string } {
  return withDir((dir) => {
    writeFileSync(join(dir, 'root.pem'), rootPem);
    writeFileSync(join(dir, 'leaf.pem'), leafPem);
    const args = ['verify', '-CAfile', join(dir, 'root.pem')];
    if (intermediatesPem.length) {
      writeFileSync(join(dir, 'untrusted.pem'), intermediatesPem.join(''));
      args.push('-untrusted', join(dir, 'untrusted.pem'));
    }
    if (purpose) args.push('-purpose', purpose);
    args.push(join(dir, 'leaf.pem'));
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  });
}

/** `openssl x509 -text` of a certificate. */
export function opensslText(certPem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: certPem, encoding: 'utf8' });
}

export interface OpensslCa {
  rootCertPem: string;
  rootKeyPem: string;
  caCertPem: string;
  caKeyPem: string;
  /** The intermediate then the root, as Istio's cert-chain.pem usually is. */
  certChainPem: string;
}

/** A root CA and an intermediate CA signed by it, made with openssl (the plugged-in `cacerts` case). */
export function opensslIntermediateCa(o: { alg?: TestKeyAlg; days?: number } = {}): OpensslCa {
  return withDir((dir) => {
    const p = (n: string): string => join(dir, n);
    const days = String(o.days ?? 365);
    writeFileSync(p('ext.cnf'), ['[inter]', 'basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid', ''].join('\n'));
    execFileSync('openssl', ['req', '-x509', ...keyArgs(o.alg ?? 'ec-p256'), '-nodes', '-days', days, '-subj', '/O=Test Root Org/CN=Test Root CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', p('root.key'), '-out', p('root.pem')], { stdio: 'pipe' });
    execFileSync('openssl', ['req', '-new', ...keyArgs(o.alg ?? 'ec-p256'), '-nodes', '-subj', '/O=cluster.local/CN=Intermediate CA', '-keyout', p('ca.key'), '-out', p('ca.csr')], { stdio: 'pipe' });
    execFileSync('openssl', ['x509', '-req', '-in', p('ca.csr'), '-CA', p('root.pem'), '-CAkey', p('root.key'), '-CAcreateserial', '-days', days, '-extfile', p('ext.cnf'), '-extensions', 'inter', '-out', p('ca.pem')], { stdio: 'pipe' });
    const caCertPem = readFileSync(p('ca.pem'), 'utf8');
    const rootCertPem = readFileSync(p('root.pem'), 'utf8');
    return { rootCertPem, rootKeyPem: readFileSync(p('root.key'), 'utf8'), caCertPem, caKeyPem: readFileSync(p('ca.key'), 'utf8'), certChainPem: caCertPem + rootCertPem };
  });
}
