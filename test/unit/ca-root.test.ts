// The CA's root of trust: self-signed roots of each key type, and plugged-in material
// (Istio's cacerts layout) checked before use, read back by openssl and node:crypto.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSelfSignedRoot, loadRootOfTrust } from '../../src/ca/root-of-trust.js';
import { readCaDirectory } from '../../src/ca/ca-files.js';
import { CertificateAuthority } from '../../src/ca/ca.js';
import { RootOfTrustError } from '../../src/ca/errors.js';
import { opensslCsr, opensslIntermediateCa, opensslText, opensslVerify } from '../support/openssl.js';

const ID = 'spiffe://cluster.local/ns/default/sa/sleep';
const YEAR_MS = 365 * 24 * 3600 * 1000;

describe('self-signed root', () => {
  for (const [keyType, expected] of [['ec-p256', { type: 'ec', curve: 'prime256v1' }], ['rsa-2048', { type: 'rsa', bits: 2048 }], ['rsa-3072', { type: 'rsa', bits: 3072 }]] as const) {
    it(`${keyType}: O=<trust domain>, CA:true, keyCertSign+cRLSign, 10 years, self-signed`, () => {
      const before = Date.now();
      const m = generateSelfSignedRoot({ keyType, trustDomain: 'example.org' });
      const cert = new X509Certificate(m.caCertPem);
      assert.equal(cert.subject, 'O=example.org');
      assert.equal(cert.issuer, 'O=example.org');
      assert.equal(cert.ca, true);
      assert.ok(cert.checkIssued(cert) && cert.verify(cert.publicKey), 'self-signed');
      const key = createPrivateKey(m.caKeyPem);
      assert.ok(cert.checkPrivateKey(key), 'the key is the certificate\'s');
      assert.equal(key.asymmetricKeyType, expected.type);
      if ('curve' in expected) assert.equal(key.asymmetricKeyDetails?.namedCurve, expected.curve);
      else assert.equal(key.asymmetricKeyDetails?.modulusLength, expected.bits);
      const lifetime = new Date(cert.validTo).getTime() - before;
      assert.ok(Math.abs(lifetime - 10 * YEAR_MS) < 24 * 3600 * 1000, `10 years, got ${lifetime / YEAR_MS} years`);
      assert.ok(new Date(cert.validFrom).getTime() <= before, 'valid from before now');
      const text = opensslText(m.caCertPem);
      assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
      assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
      assert.match(text, /X509v3 Subject Key Identifier/);
      assert.match(text, keyType === 'ec-p256' ? /ecdsa-with-SHA256/ : /sha256WithRSAEncryption/);
      // openssl accepts it as a trust anchor for itself.
      assert.ok(opensslVerify(m.caCertPem, m.caCertPem).ok);
    });
  }

  it('a root that expires soon caps the certificates it signs', async () => {
    const m = generateSelfSignedRoot({ keyType: 'ec-p256', trustDomain: 'cluster.local', ttlMs: 3600_000 });
    const ca = new CertificateAuthority({ rootOfTrust: loadRootOfTrust(m, 'test'), trustDomain: 'cluster.local', source: 'test' });
    const [leaf] = await ca.sign(opensslCsr({ sans: [`URI:${ID}`] }).csrPem, { identity: ID, ttlSeconds: 24 * 3600 });
    const leafCert = new X509Certificate(leaf!);
    const rootCert = new X509Certificate(m.caCertPem);
    assert.ok(new Date(leafCert.validTo).getTime() <= new Date(rootCert.validTo).getTime(), `leaf ${leafCert.validTo} must not outlive the root ${rootCert.validTo}`);
    assert.ok(new Date(leafCert.validTo).getTime() - Date.now() < 2 * 3600_000);
  });
});

describe('plugged-in CA (cacerts layout)', () => {
  it('an intermediate CA made by openssl: chain is leaf, intermediate, root; openssl verify -untrusted passes', async () => {
    const o = opensslIntermediateCa();
    const dir = mkdtempSync(join(tmpdir(), 'meshd-cacerts-'));
    try {
      writeFileSync(join(dir, 'ca-cert.pem'), o.caCertPem);
      writeFileSync(join(dir, 'ca-key.pem'), o.caKeyPem);
      writeFileSync(join(dir, 'root-cert.pem'), o.rootCertPem);
      writeFileSync(join(dir, 'cert-chain.pem'), o.certChainPem);
      const root = loadRootOfTrust(readCaDirectory(dir), dir);
      const ca = new CertificateAuthority({ rootOfTrust: root, trustDomain: 'cluster.local', source: dir });
      assert.equal(ca.rootCertPem, new X509Certificate(o.rootCertPem).toString());
      const chain = await ca.sign(opensslCsr({ alg: 'rsa-2048', sans: [`URI:${ID}`] }).csrPem, { identity: ID });
      assert.equal(chain.length, 3);
      const [leaf, inter, rootPem] = chain.map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate, X509Certificate];
      assert.equal(inter.fingerprint256, new X509Certificate(o.caCertPem).fingerprint256, 'second: the intermediate');
      assert.equal(rootPem.fingerprint256, new X509Certificate(o.rootCertPem).fingerprint256, 'last: the root');
      assert.ok(leaf.checkIssued(inter) && leaf.verify(inter.publicKey), 'the leaf is signed by the intermediate');
      assert.equal(leaf.issuer, inter.subject);
      const v = opensslVerify(o.rootCertPem, chain[0]!, [chain[1]!]);
      assert.ok(v.ok, v.output);
      // Without the intermediate, the leaf does not verify to the root.
      assert.equal(opensslVerify(o.rootCertPem, chain[0]!).ok, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cert-chain.pem without the root, or absent, gives the same chain', async () => {
    const o = opensslIntermediateCa();
    for (const certChainPem of [o.caCertPem, undefined]) {
      const root = loadRootOfTrust({ caCertPem: o.caCertPem, caKeyPem: o.caKeyPem, rootCertPem: o.rootCertPem, certChainPem }, 'test');
      assert.deepEqual(root.intermediates.map((c) => c.x509.fingerprint256), [new X509Certificate(o.caCertPem).fingerprint256]);
    }
  });

  it('refuses material that is not a working CA, saying why', () => {
    const o = opensslIntermediateCa();
    const other = opensslIntermediateCa();
    const cases: [string, Parameters<typeof loadRootOfTrust>[0], RegExp][] = [
      ['key of another certificate', { caCertPem: o.caCertPem, caKeyPem: other.caKeyPem, rootCertPem: o.rootCertPem }, /ca-key\.pem does not match ca-cert\.pem/],
      ['intermediate under another root', { caCertPem: o.caCertPem, caKeyPem: o.caKeyPem, rootCertPem: other.rootCertPem }, /is not signed by root-cert\.pem/],
      ['not PEM', { caCertPem: 'hello', caKeyPem: o.caKeyPem }, /ca-cert\.pem: no PEM CERTIFICATE block/],
      ['unreadable key', { caCertPem: o.caCertPem, caKeyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, /ca-key\.pem: not a readable PEM private key/],
      ['intermediate without its root', { caCertPem: o.caCertPem, caKeyPem: o.caKeyPem }, /root-cert\.pem is not a self-signed certificate/],
    ];
    for (const [what, m, re] of cases) {
      assert.throws(() => loadRootOfTrust(m, 'dir x'), (err: unknown) => err instanceof RootOfTrustError && re.test(err.message) && err.message.startsWith('dir x: '), what);
    }
  });

  it('refuses a certificate that is not a CA', async () => {
    const self = generateSelfSignedRoot({ keyType: 'ec-p256', trustDomain: 'cluster.local' });
    const ca = new CertificateAuthority({ rootOfTrust: loadRootOfTrust(self, 'test'), trustDomain: 'cluster.local', source: 'test' });
    const leaf = await ca.issue(ID);
    assert.throws(
      () => loadRootOfTrust({ caCertPem: leaf.certChainPem[0]!, caKeyPem: leaf.privateKeyPem, rootCertPem: self.caCertPem }, 'x'),
      (err: unknown) => err instanceof RootOfTrustError && /is not a CA certificate/.test(err.message),
    );
  });

  it('a missing ca-key.pem is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-cacerts-'));
    try {
      writeFileSync(join(dir, 'ca-cert.pem'), opensslIntermediateCa().caCertPem);
      assert.throws(() => readCaDirectory(dir), /ca-key\.pem is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
