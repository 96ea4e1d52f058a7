import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateWebhook } from '../../src/webhooks/validate.js';
import { AdmissionError, parseAdmissionReview, type AdmissionRequest } from '../../src/webhooks/admission.js';
import { silentLogger } from '../../src/util/log.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { probeGateway, refusedByMeshd } from '../../src/controllers/validation-fail-close.js';

const handle = validateWebhook({ log: silentLogger });

function vs(weights: number[], name = 'reviews'): Record<string, unknown> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'bookinfo' },
    spec: { hosts: ['reviews'], http: [{ route: weights.map((weight, i) => ({ destination: { host: 'reviews', subset: `v${i + 1}` }, weight })) }] },
  };
}

function request(kind: string, object: unknown, operation = 'CREATE'): AdmissionRequest {
  return { uid: 'u1', kind: { group: 'networking.istio.io', version: 'v1', kind }, namespace: 'bookinfo', operation, object };
}

describe('validating webhook (/validate)', () => {
  it('refuses a VirtualService whose weights sum to 130, naming the field, with code 400', () => {
    const r = handle(request('VirtualService', vs([80, 50])));
    assert.equal(r.allowed, false);
    assert.equal(r.uid, 'u1');
    assert.equal(r.status?.code, 400);
    assert.match(r.status?.message ?? '', /^Error \[IST0106\] \(VirtualService bookinfo\/reviews\) Schema validation error: spec\.http\[0\]\.route: weights sum to 130/);
    assert.match(r.status?.message ?? '', /130/);
  });

  it('allows a valid VirtualService, on CREATE and UPDATE', () => {
    for (const op of ['CREATE', 'UPDATE']) {
      const r = handle(request('VirtualService', vs([80, 20]), op));
      assert.deepEqual(r, { uid: 'u1', allowed: true });
    }
  });

  it('refuses an invalid Gateway and DestinationRule with their fields', () => {
    const gw = handle(request('Gateway', { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'gw' }, spec: { servers: [{ port: { number: 99999, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } }));
    assert.equal(gw.allowed, false);
    assert.match(gw.status?.message ?? '', /\(Gateway bookinfo\/gw\) Schema validation error: spec\.servers\[0\]\.port/);
    const dr = handle(request('DestinationRule', { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'dr' }, spec: { host: 'reviews', subsets: [{ labels: { version: 'v1' } }] } }));
    assert.equal(dr.allowed, false);
    assert.match(dr.status?.message ?? '', /\(DestinationRule bookinfo\/dr\) Schema validation error: spec\.subsets\[0\]/);
  });

  it('names an object created with generateName', () => {
    const o = vs([80, 50]);
    o.metadata = { generateName: 'rev-', namespace: 'bookinfo' };
    const r = handle(request('VirtualService', o));
    assert.match(r.status?.message ?? '', /\(VirtualService bookinfo\/rev-<generated>\)/);
  });

  it('allows DELETE and other kinds without reading them', () => {
    assert.equal(handle(request('VirtualService', undefined, 'DELETE')).allowed, true);
    assert.equal(handle(request('EnvoyFilter', { nonsense: true })).allowed, true);
  });

  it('refuses a request whose object is not an object, and garbage reviews are AdmissionErrors (4xx)', () => {
    const r = handle(request('VirtualService', 'not an object'));
    assert.equal(r.allowed, false);
    assert.equal(r.status?.code, 400);
    for (const body of [null, 'x', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, { apiVersion: 'v1', kind: 'Pod' }]) {
      assert.throws(() => parseAdmissionReview(body), (e) => e instanceof AdmissionError && e.httpStatus >= 400 && e.httpStatus < 500);
    }
  });

  it('bounds the message: at most 10 errors and a count of the rest', () => {
    const o = vs([]);
    (o.spec as { http: unknown[] }).http = Array.from({ length: 15 }, () => ({ route: [{ destination: { host: 'reviews' }, weight: 130 }] }));
    const r = handle(request('VirtualService', o));
    assert.equal(r.allowed, false);
    const lines = r.status?.message.split('\n') ?? [];
    assert.equal(lines.length, 11);
    assert.equal(lines[10], '(5 more errors)');
  });
});

describe('validating webhook warnings, against meshd\'s snapshot', () => {
  const held = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-first, namespace: bookinfo}
spec: {hosts: [ratings], http: [{route: [{destination: {host: reviews}}]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a-gateway, namespace: bookinfo}
spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com]}]}
`;
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(held, 'held.yaml').objects);
  const snapshot = buildSnapshot(store, 'cluster.local').snapshot;
  const warn = validateWebhook({ log: silentLogger, snapshot: () => snapshot });

  it('allows a valid VirtualService whose subsets and hosts exist, without warnings', () => {
    assert.deepEqual(warn(request('VirtualService', vs([80, 20]))), { uid: 'u1', allowed: true });
  });

  it('allows a VirtualService naming a subset no DestinationRule defines yet, and a host that is no Service yet, with warnings', () => {
    const o = vs([50, 50]);
    (o.spec as { http: { route: { destination: { host: string; subset?: string } }[] }[] }).http[0]!.route[1]!.destination = { host: 'reviews2', subset: 'v1' };
    (o.spec as { http: { route: { destination: { host: string; subset?: string } }[] }[] }).http[0]!.route[0]!.destination.subset = 'v9';
    const r = warn(request('VirtualService', o));
    assert.equal(r.allowed, true);
    assert.deepEqual(r.warnings, [
      'Warning [IST0101] (VirtualService bookinfo/reviews) Referenced host not found: "reviews2" (no Service has it yet; meshd sends nothing there until one does)',
      'Warning [IST0101] (VirtualService bookinfo/reviews) Referenced host+subset in destinationrule not found: "reviews+v9": no DestinationRule for reviews.bookinfo.svc.cluster.local defines subset v9 yet; until one does, meshd leaves this VirtualService out.',
      'Warning [IST0101] (VirtualService bookinfo/reviews) Referenced host+subset in destinationrule not found: "reviews2+v1": no DestinationRule for reviews2.bookinfo.svc.cluster.local defines subset v1 yet; until one does, meshd leaves this VirtualService out.',
    ]);
  });

  it('warns of a conflict the object would lose: a mesh host held by another VirtualService, a Gateway port and host', () => {
    const vsRatings = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'z-ratings' }, spec: { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } };
    const r = warn(request('VirtualService', vsRatings));
    assert.equal(r.allowed, true);
    assert.match(r.warnings?.[0] ?? '', /^Warning \[IST0109\] \(VirtualService bookinfo\/z-ratings\) .*sidecars use only bookinfo\/reviews-first/);
    const gw = { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'b-gateway' }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['shop.example.com'] }] } };
    const g = warn(request('Gateway', gw));
    assert.equal(g.allowed, true);
    assert.match(g.warnings?.[0] ?? '', /^Warning \[IST0145\] \(Gateway bookinfo\/b-gateway\) Conflict with gateway bookinfo\/a-gateway/);
    // The winner itself, updated, is not warned.
    const a = warn(request('Gateway', { ...gw, metadata: { name: 'a-gateway' } }, 'UPDATE'));
    assert.deepEqual(a, { uid: 'u1', allowed: true });
  });

  it('bounds the warnings: at most 10, each at most 256 characters', () => {
    const o = vs([]);
    (o.spec as { http: unknown[] }).http = Array.from({ length: 15 }, (_, i) => ({ route: [{ destination: { host: `missing-${'x'.repeat(300)}-${i}` } }] }));
    const r = warn(request('VirtualService', o));
    assert.equal(r.allowed, true);
    assert.equal(r.warnings?.length, 10);
    assert.ok(r.warnings!.every((w) => w.length <= 256));
    assert.equal(r.warnings![9], '(6 more warnings)');
  });
});

describe('the fail-close proof (controllers/validation-fail-close.ts)', () => {
  const names = ['rev.validation.istio.io'];
  it('counts only a refusal by one of the configuration\'s webhooks of the probe Gateway, with meshd\'s message', () => {
    // The probe Gateway is what meshd's own webhook refuses.
    const gw = probeGateway('istio-system');
    const r = handle({ uid: 'p', kind: { group: 'networking.istio.io', version: 'v1', kind: 'Gateway' }, namespace: 'istio-system', operation: 'CREATE', object: gw });
    assert.equal(r.allowed, false);
    const apiserver = `admission webhook "rev.validation.istio.io" denied the request: ${r.status?.message ?? ''}`;
    assert.equal(refusedByMeshd(apiserver, 'istio-system', names), true);
    // Another webhook's refusal, a failed call, or meshd's message for another object are not proofs.
    assert.equal(refusedByMeshd(apiserver.replace('rev.validation.istio.io', 'other.example.com'), 'istio-system', names), false);
    assert.equal(refusedByMeshd('Internal error occurred: failed calling webhook "rev.validation.istio.io": x509: certificate signed by unknown authority', 'istio-system', names), false);
    assert.equal(refusedByMeshd(apiserver, 'default', names), false);
  });
});

describe('validating webhook warnings for AuthorizationPolicies', () => {
  const held = `
apiVersion: v1
kind: Service
metadata: {name: db, namespace: bookinfo}
spec: {selector: {app: db}, ports: [{name: tcp-pg, port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: bookinfo, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: db, image: db}]}
`;
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(held, 'held.yaml').objects);
  const snapshot = buildSnapshot(store, 'cluster.local').snapshot;
  const warn = validateWebhook({ log: silentLogger, snapshot: () => snapshot });
  const policy = (spec: unknown): Record<string, unknown> => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'db-policy' }, spec });

  it('admits a policy using an HTTP-only field where it selects a TCP port, with the IST0167 warning', () => {
    const r = warn({ ...request('AuthorizationPolicy', policy({ selector: { matchLabels: { app: 'db' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })), kind: { group: 'security.istio.io', version: 'v1', kind: 'AuthorizationPolicy' } });
    assert.equal(r.allowed, true);
    assert.equal(r.warnings?.length, 1);
    assert.match(r.warnings![0]!, /^Warning \[IST0167\] \(AuthorizationPolicy bookinfo\/db-policy\) .*spec\.rules\[0\]\.to\[0\]\.operation\.methods .*TCP ports 5432/);
  });

  it('admits the same policy on workloads without TCP ports with no warning', () => {
    const r = warn({ ...request('AuthorizationPolicy', policy({ selector: { matchLabels: { app: 'web' } }, rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })), kind: { group: 'security.istio.io', version: 'v1', kind: 'AuthorizationPolicy' } });
    assert.deepEqual(r, { uid: 'u1', allowed: true });
  });
});

describe('validating webhook for RequestAuthentications', () => {
  const held = `
apiVersion: v1
kind: Service
metadata: {name: jwks, namespace: auth}
spec: {selector: {app: jwks}, ports: [{name: http, port: 8080}]}
`;
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(held, 'held.yaml').objects);
  const snapshot = buildSnapshot(store, 'cluster.local').snapshot;
  const handleRa = validateWebhook({ log: silentLogger, snapshot: () => snapshot });
  const ra = (jwtRules: unknown): AdmissionRequest => ({
    ...request('RequestAuthentication', { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt' }, spec: { jwtRules } }),
    kind: { group: 'security.istio.io', version: 'v1', kind: 'RequestAuthentication' },
  });

  it('refuses a rule without issuer and a jwksUri that is no http(s) URL, naming the fields', () => {
    const r = handleRa(ra([{ jwksUri: 'ftp://keys.example.com/jwks' }]));
    assert.equal(r.allowed, false);
    assert.match(r.status?.message ?? '', /spec\.jwtRules\[0\]\.issuer: is required/);
    assert.match(r.status?.message ?? '', /spec\.jwtRules\[0\]\.jwksUri: "ftp:\/\/keys\.example\.com\/jwks" is not an http or https URL/);
  });

  it('admits a jwksUri on an existing Service quietly, and warns (IST0101) for one on a Service that does not exist', () => {
    assert.deepEqual(handleRa(ra([{ issuer: 'a', jwksUri: 'http://jwks.auth.svc.cluster.local:8080/keys' }])), { uid: 'u1', allowed: true });
    const r = handleRa(ra([{ issuer: 'a', jwksUri: 'http://keys.auth.svc.cluster.local/keys' }]));
    assert.equal(r.allowed, true);
    assert.equal(r.warnings?.length, 1);
    assert.match(r.warnings![0]!, /^Warning \[IST0101\] \(RequestAuthentication bookinfo\/jwt\) .*Referenced host not found: "keys\.auth\.svc\.cluster\.local"/);
  });
});
