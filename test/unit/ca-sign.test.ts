// Signing CSRs made by `openssl req`: chains checked by `openssl verify` and node:crypto,
// lifetimes, SANs and extensions; and every kind of bad request refused with its typed error.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { connect, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { generateSelfSignedRoot, loadRootOfTrust } from '../../src/ca/root-of-trust.js';
import { CertificateAuthority, BACKDATE_MS } from '../../src/ca/ca.js';
import { CaError, InvalidCsrError, PermissionDeniedError } from '../../src/ca/errors.js';
import { pemBlocks, toPem } from '../../src/ca/pem.js';
import { opensslCsr, opensslText, opensslVerify, type TestKeyAlg } from '../support/openssl.js';

const ID = 'spiffe://cluster.local/ns/default/sa/sleep';
const HOUR = 3600;

function newCa(keyType: 'ec-p256' | 'rsa-2048', o: { defaultTtlSeconds?: number; maxTtlSeconds?: number } = {}): CertificateAuthority {
  return new CertificateAuthority({ rootOfTrust: loadRootOfTrust(generateSelfSignedRoot({ keyType, trustDomain: 'cluster.local' }), 'test'), trustDomain: 'cluster.local', source: 'test', ...o });
}

const lifetimeSeconds = (c: X509Certificate): number => (new Date(c.validTo).getTime() - new Date(c.validFrom).getTime() - BACKDATE_MS) / 1000;

describe('signing CSRs made by openssl', () => {
  const cas = { 'ec-p256': newCa('ec-p256'), 'rsa-2048': newCa('rsa-2048') };

  for (const caKey of ['ec-p256', 'rsa-2048'] as const) {
    for (const csrKey of ['ec-p256', 'ec-p384', 'rsa-2048'] as TestKeyAlg[]) {
      it(`CA ${caKey}, CSR key ${csrKey}: openssl and node:crypto verify the chain; SPIFFE SAN; requested lifetime`, async () => {
        const ca = cas[caKey];
        const { csrPem, keyPem } = opensslCsr({ alg: csrKey, sans: [`URI:${ID}`] });
        const before = Date.now();
        const chain = await ca.sign(csrPem, { identity: ID, ttlSeconds: 2 * HOUR });
        assert.equal(chain.length, 2, 'leaf then root');
        assert.equal(chain[1], ca.rootCertPem);
        const leaf = new X509Certificate(chain[0]!);
        const root = new X509Certificate(ca.rootCertPem);
        const v = opensslVerify(ca.rootCertPem, chain[0]!, [], 'sslclient');
        assert.ok(v.ok, v.output);
        assert.ok(opensslVerify(ca.rootCertPem, chain[0]!, [], 'sslserver').ok, 'serverAuth too');
        assert.ok(leaf.checkIssued(root), 'issuer is the root');
        assert.ok(leaf.verify(root.publicKey), 'signed by the root key');
        assert.equal(leaf.issuer, 'O=cluster.local');
        assert.equal(leaf.subject, undefined, 'empty subject');
        assert.equal(leaf.subjectAltName, `URI:${ID}`);
        assert.equal(leaf.ca, false);
        assert.ok(leaf.checkPrivateKey(createPrivateKey(keyPem)), 'the certificate carries the CSR\'s key');
        assert.deepEqual(leaf.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
        const from = new Date(leaf.validFrom).getTime();
        assert.ok(from <= before - 50_000 && from >= before - 62_000, `backdated about a minute: ${leaf.validFrom}`);
        assert.ok(Math.abs(lifetimeSeconds(leaf) - 2 * HOUR) <= 2, `2 h lifetime, got ${lifetimeSeconds(leaf)} s`);
        const text = opensslText(chain[0]!);
        assert.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep\n/);
        assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
        assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
        assert.match(text, /X509v3 Subject Key Identifier/);
        const aki = /X509v3 Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
        const ski = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(opensslText(ca.rootCertPem))?.[1];
        assert.ok(aki && aki === ski, `AKI ${aki} is the root's SKI ${ski}`);
        assert.match(text, caKey === 'ec-p256' ? /Signature Algorithm: ecdsa-with-SHA256/ : /Signature Algorithm: sha256WithRSAEncryption/);
      });
    }
  }

  it('accepts DER as well as PEM', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`] });
    const der = pemBlocks(csrPem)[0]!.der;
    const chain = await cas['ec-p256'].sign(der, { identity: ID });
    assert.equal(new X509Certificate(chain[0]!).subjectAltName, `URI:${ID}`);
  });

  it('serial numbers are random and up to 128 bits', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`] });
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) serials.add(new X509Certificate((await cas['ec-p256'].sign(csrPem, { identity: ID }))[0]!).serialNumber);
    assert.equal(serials.size, 20);
    for (const s of serials) assert.ok(BigInt(`0x${s}`) < 2n ** 128n && BigInt(`0x${s}`) > 0n, s);
    assert.ok([...serials].some((s) => BigInt(`0x${s}`) >= 2n ** 120n), 'the high bits are used');
  });

  it('lifetime: 0 is the default, more than the maximum is cut to it, negative is refused', async () => {
    const ca = newCa('ec-p256', { defaultTtlSeconds: 3 * HOUR, maxTtlSeconds: 5 * HOUR });
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`] });
    const life = async (ttlSeconds?: number): Promise<number> => lifetimeSeconds(new X509Certificate((await ca.sign(csrPem, { identity: ID, ttlSeconds }))[0]!));
    assert.ok(Math.abs((await life(0)) - 3 * HOUR) <= 2);
    assert.ok(Math.abs((await life(undefined)) - 3 * HOUR) <= 2);
    assert.ok(Math.abs((await life(1000 * HOUR)) - 5 * HOUR) <= 2, 'capped at the maximum');
    assert.ok(Math.abs((await life(HOUR)) - HOUR) <= 2);
    await assert.rejects(ca.sign(csrPem, { identity: ID, ttlSeconds: -5 }), (err: unknown) => err instanceof CaError && err.code === 'MESHD_CA_TTL_INVALID' && err.grpcStatus === 3);
  });
});

describe('refused CSRs', () => {
  let ca: CertificateAuthority;
  before(() => {
    ca = newCa('ec-p256');
  });
  const denied = (re: RegExp) => (err: unknown): boolean => err instanceof PermissionDeniedError && err.grpcStatus === 7 && re.test(err.message);
  const invalid = (re: RegExp) => (err: unknown): boolean => err instanceof InvalidCsrError && err.grpcStatus === 3 && re.test(err.message);

  it('a SAN for another identity: PermissionDenied', async () => {
    const { csrPem } = opensslCsr({ sans: ['URI:spiffe://cluster.local/ns/default/sa/admin'] });
    await assert.rejects(ca.sign(csrPem, { identity: ID }), denied(/asks for spiffe:\/\/cluster\.local\/ns\/default\/sa\/admin; the caller may only request/));
  });

  it('two SAN URIs, one of them the caller\'s: PermissionDenied', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`, 'URI:spiffe://cluster.local/ns/kube-system/sa/admin'] });
    await assert.rejects(ca.sign(csrPem, { identity: ID }), denied(/asks for .*sa\/sleep, .*sa\/admin/));
  });

  it('a DNS name besides the SPIFFE URI: PermissionDenied', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`, 'DNS:kubernetes.default.svc'] });
    await assert.rejects(ca.sign(csrPem, { identity: ID }), denied(/names other than a SPIFFE URI \(kubernetes\.default\.svc\)/));
  });

  it('no SAN at all: PermissionDenied', async () => {
    const { csrPem } = opensslCsr({ subject: '/CN=sleep' });
    await assert.rejects(ca.sign(csrPem, { identity: ID }), denied(/asks for no SPIFFE URI/));
  });

  it('an identity outside the trust domain: PermissionDenied', async () => {
    const other = 'spiffe://evil.org/ns/default/sa/sleep';
    const { csrPem } = opensslCsr({ sans: [`URI:${other}`] });
    await assert.rejects(ca.sign(csrPem, { identity: other }), denied(/not a SPIFFE ID of trust domain cluster\.local/));
  });

  it('a bad signature: InvalidCsr', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`] });
    const der = Buffer.from(pemBlocks(csrPem)[0]!.der);
    der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1); // last byte of the ECDSA signature
    await assert.rejects(ca.sign(toPem('CERTIFICATE REQUEST', der), { identity: ID }), invalid(/signature does not verify/));
    // The signed part altered: the same.
    const der2 = Buffer.from(pemBlocks(csrPem)[0]!.der);
    const at = der2.indexOf(Buffer.from('sleep'));
    der2[at] = 'x'.charCodeAt(0);
    await assert.rejects(ca.sign(toPem('CERTIFICATE REQUEST', der2), { identity: ID.replace('sleep', 'xleep') }), invalid(/signature does not verify/));
  });

  it('garbage, truncation, a certificate instead of a CSR: InvalidCsr', async () => {
    const { csrPem } = opensslCsr({ sans: [`URI:${ID}`] });
    const der = pemBlocks(csrPem)[0]!.der;
    const cases: [string | Uint8Array, RegExp][] = [
      ['hello', /not a PEM-encoded CERTIFICATE REQUEST/],
      ['', /not a PEM-encoded/],
      ['-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n', /not base64/],
      [toPem('CERTIFICATE REQUEST', Buffer.from('not der at all')), /not DER/],
      [toPem('CERTIFICATE REQUEST', der.subarray(0, der.length - 10)), /not DER|runs past/],
      [toPem('CERTIFICATE REQUEST', Buffer.concat([der, Buffer.from([0])])), /trailing bytes/],
      [ca.rootCertPem, /found 0/],
      [Buffer.from([0x30, 0x80, 0, 0]), /indefinite length/],
      [csrPem + csrPem, /expected one PEM CERTIFICATE REQUEST block, found 2/],
    ];
    for (const [input, re] of cases) await assert.rejects(ca.sign(input, { identity: ID }), invalid(re), String(input).slice(0, 40));
  });

  it('an RSA key under 2048 bits: InvalidCsr', async () => {
    const { csrPem } = opensslCsr({ alg: 'rsa-1024', sans: [`URI:${ID}`] });
    await assert.rejects(ca.sign(csrPem, { identity: ID }), invalid(/RSA key of 1024 bits is not supported/));
  });
});

describe('keys and certificates meshd makes itself', () => {
  const ca = newCa('ec-p256');

  it('issue(): a P-256 key and its certificate for the identity', async () => {
    const r = await ca.issue(ID, 600);
    const leaf = new X509Certificate(r.certChainPem[0]!);
    const key = createPrivateKey(r.privateKeyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(leaf.checkPrivateKey(key));
    assert.equal(leaf.subjectAltName, `URI:${ID}`);
    assert.ok(opensslVerify(ca.rootCertPem, r.certChainPem[0]!).ok);
    assert.ok(Math.abs(lifetimeSeconds(leaf) - 600) <= 2);
    assert.equal(createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('hex'), leaf.publicKey.export({ format: 'der', type: 'spki' }).toString('hex'));
  });

  it('a serving certificate a TLS client accepts by DNS name and by IP with only the root', async () => {
    const r = await ca.issueServingCertificate({ dnsNames: ['istiod.istio-system.svc', 'localhost'], ipAddresses: ['127.0.0.1', '::1'], ttlSeconds: HOUR });
    const leaf = new X509Certificate(r.certChainPem[0]!);
    assert.equal(leaf.subjectAltName, 'DNS:istiod.istio-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    const server: Server = createServer({ cert: r.certChainPem[0], key: r.privateKeyPem }, (s) => s.end('hi'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as AddressInfo).port;
    const hello = (servername: string | undefined, ca: string): Promise<string> =>
      new Promise((res, rej) => {
        const s = connect({ host: '127.0.0.1', port, servername, ca }, () => s.once('data', (d: Buffer) => res(d.toString())));
        s.on('error', rej);
      });
    try {
      assert.equal(await hello('istiod.istio-system.svc', ca.rootCertPem), 'hi');
      assert.equal(await hello(undefined, ca.rootCertPem), 'hi', 'by IP 127.0.0.1');
      await assert.rejects(hello('istiod.other.svc', ca.rootCertPem), /does not match|altnames/i);
      await assert.rejects(hello('localhost', newCa('ec-p256').rootCertPem), /self[- ]signed|unable to (get|verify)/i);
    } finally {
      server.close();
    }
  });
});
