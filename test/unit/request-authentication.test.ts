import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshObject, type RequestAuthenticationObject } from '../../src/model/objects.js';
import { jwksLocation } from '../../src/model/request-authentication.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { jwtAuthnFilters, jwksClusters } from '../../src/translate/request-authentication.js';

function parse(spec: unknown): ReturnType<typeof parseMeshObject> {
  return parseMeshObject({ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec });
}

function fields(spec: unknown): string[] {
  const r = parse(spec);
  return r.ok === false ? r.errors.map((e) => `${e.field}: ${e.message}`) : [];
}

describe('RequestAuthentication parsing', () => {
  it('accepts every field, at v1 and v1beta1', () => {
    const spec = {
      selector: { matchLabels: { app: 'httpbin' } },
      jwtRules: [
        {
          issuer: 'https://issuer.example.com',
          audiences: ['a'],
          jwksUri: 'https://issuer.example.com:8443/jwks',
          fromHeaders: [{ name: 'x-token', prefix: 'Token ' }],
          fromParams: ['token'],
          fromCookies: ['session'],
          outputPayloadToHeader: 'x-jwt-payload',
          forwardOriginalToken: true,
          outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
          timeout: '2s',
        },
        { issuer: 'inline', jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}' },
      ],
    };
    assert.equal(parse(spec).ok, true);
    assert.equal(parseMeshObject({ apiVersion: 'security.istio.io/v1beta1', kind: 'RequestAuthentication', metadata: { name: 'jwt' }, spec }).ok, true);
  });

  it('refuses with the field: a missing issuer, a bad URL, bad JWKS, both or neither key source, a duplicate issuer, bad names', () => {
    assert.deepEqual(fields({ jwtRules: [{ jwksUri: 'https://k.example.com/' }] }), ['spec.jwtRules[0].issuer: is required: the "iss" a token must carry, such as "https://accounts.example.com"']);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwksUri: '/jwks' }] })[0]!, /^spec\.jwtRules\[0\]\.jwksUri: "\/jwks" is not an http or https URL/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwks: '[]' }] })[0]!, /^spec\.jwtRules\[0\]\.jwks: is not a JSON Web Key Set/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwks: '{"keys":[{"n":"x"}]}' }] })[0]!, /^spec\.jwtRules\[0\]\.jwks: keys\[0\] is not a JSON Web Key/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwks: '{"keys":[{"kty":"RSA"}]}', jwksUri: 'https://k.example.com/' }] })[0]!, /jwks: cannot be set together with jwksUri/);
    assert.match(fields({ jwtRules: [{ issuer: 'a' }] })[0]!, /jwksUri: is required \(or jwks\)/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwksUri: 'https://k/' }, { issuer: 'a', jwksUri: 'https://k/' }] })[0]!, /^spec\.jwtRules\[1\]\.issuer: "a" is already the issuer of jwtRules\[0\]/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwksUri: 'https://k/', fromHeaders: [{ name: 'bad header' }] }] })[0]!, /fromHeaders\[0\]\.name: "bad header" is not an HTTP header name/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwksUri: 'https://k/', outputPayloadToHeader: ':authority' }] })[0]!, /outputPayloadToHeader: ":authority": pseudo-headers/);
    assert.match(fields({ jwtRules: [{ issuer: 'a', jwksUri: 'https://k/', bogus: 1 }] })[0]!, /bogus/);
  });

  it('reads a jwksUri: scheme, host, default ports, IPv6', () => {
    assert.deepEqual(jwksLocation('https://k.example.com/jwks'), { tls: true, host: 'k.example.com', port: 443, uri: 'https://k.example.com/jwks' });
    assert.deepEqual(jwksLocation('http://[fd00::1]:8080/jwks'), { tls: false, host: 'fd00::1', port: 8080, uri: 'http://[fd00::1]:8080/jwks' });
    assert.equal(jwksLocation('http://user:pw@k/jwks'), undefined);
    assert.equal(jwksLocation('file:///etc/jwks'), undefined);
  });
});

describe('RequestAuthentication translation', () => {
  const yaml = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {jwtRules: [{issuer: mesh, jwksUri: "https://keys.example.com/jwks"}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: web, namespace: foo}
spec:
  selector: {matchLabels: {app: web}}
  jwtRules: [{issuer: web, jwksUri: "http://10.1.2.3:8080/jwks"}, {issuer: web2, jwksUri: "http://10.1.2.3:8080/other"}]
`;
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(yaml, 'in.yaml').objects);
  const snapshot = buildSnapshot(store, 'cluster.local').snapshot;
  const providers = (ns: string, labels: Record<string, string>): Record<string, { issuer: string }> => {
    const f = jwtAuthnFilters(snapshot.config, { namespace: ns, labels });
    return f.length ? ((f[0]!.typed_config as { providers: Record<string, { issuer: string }> }).providers) : {};
  };

  it('merges the rules of every policy that applies, in namespace/name order, with "any provider or no token"', () => {
    assert.deepEqual(Object.entries(providers('foo', { app: 'web' })).map(([k, p]) => `${k}=${p.issuer}`), ['origins-0=web', 'origins-1=web2', 'origins-2=mesh']);
    assert.deepEqual(Object.entries(providers('foo', { app: 'db' })).map(([k, p]) => `${k}=${p.issuer}`), ['origins-0=mesh']);
    const f = jwtAuthnFilters(snapshot.config, { namespace: 'bar', labels: {} })[0]!;
    const reqs = (f.typed_config as { rules: { requires: { requires_any: { requirements: unknown[] } } }[] }).rules[0]!.requires.requires_any.requirements;
    assert.deepEqual(reqs, [{ provider_name: 'origins-0' }, { allow_missing: {} }]);
  });

  it('one cluster per JWKS host and port, none for a name the proxy already has', () => {
    const names = (existing: string[]): string[] => jwksClusters(snapshot, { namespace: 'foo', labels: { app: 'web' } }, new Set(existing), '10s').map((c) => c.name);
    assert.deepEqual(names([]), ['outbound|8080||10.1.2.3', 'outbound|443||keys.example.com']);
    assert.deepEqual(names(['outbound|443||keys.example.com']), ['outbound|8080||10.1.2.3']);
  });

  it('no filter and no cluster where no policy applies', () => {
    const empty = buildSnapshot(new ConfigStore(), 'cluster.local').snapshot;
    assert.deepEqual(jwtAuthnFilters(empty.config, { namespace: 'foo', labels: {} }), []);
    const obj = parse({ jwtRules: [{ issuer: 'a', jwksUri: 'https://k/' }] });
    assert.equal(obj.ok, true);
    assert.equal((obj as { value: RequestAuthenticationObject }).value.kind, 'RequestAuthentication');
  });
});
