// The mesh config as meshd reads it: Istio's field names and defaults, refusals that name the
// field, unknown fields tolerated and named; and a new mesh config pushed as a full update.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultMeshConfig, parseMeshConfig, MeshConfigError } from '../../src/model/mesh-config.js';
import { accessLogs, ISTIO_JSON_LOG_FIELDS, ISTIO_TEXT_LOG_FORMAT } from '../../src/translate/access-log.js';
import { meshRetryPolicy } from '../../src/translate/http-routes.js';
import { ConfigStore } from '../../src/model/store.js';
import { ConfigGenerator, type PushRequest } from '../../src/xds/generator.js';
import { PushController } from '../../src/xds/push-controller.js';
import { silentLogger } from '../../src/util/log.js';
import { defaultInjectorSettings, parseInjectorSettings } from '../../src/inject/settings.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESHD_CLI } from '../support/meshd.js';

const WHERE = 'ConfigMap istio-system/istio, key mesh';

function refusal(text: string): string {
  try {
    parseMeshConfig(text, WHERE);
  } catch (err) {
    assert.ok(err instanceof MeshConfigError);
    return err.message;
  }
  assert.fail(`accepted: ${text}`);
}

describe('mesh config', () => {
  it("has Istio's defaults: no access log, ALLOW_ANY, 10s connect timeout, auto mTLS, cluster.local, istio-system", () => {
    const { config } = parseMeshConfig('', WHERE);
    assert.deepEqual(config, defaultMeshConfig());
    assert.equal(config.accessLogFile, '');
    assert.equal(config.outboundTrafficPolicy.mode, 'ALLOW_ANY');
    assert.equal(config.connectTimeout, '10s');
    assert.equal(config.enableAutoMtls, true);
    assert.equal(config.trustDomain, 'cluster.local');
    assert.equal(config.rootNamespace, 'istio-system');
    assert.equal(config.defaultHttpRetryPolicy, undefined);
  });

  it('reads the fields meshd acts on, with YAML nulls as unset', () => {
    const { config } = parseMeshConfig(
      `accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat:
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
defaultConfig:
  discoveryAddress: istiod.mesh.svc:15012
  holdApplicationUntilProxyStarts: true
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
  tracing: {sampling: 10}
trustDomain: example.org
rootNamespace: mesh-root
enableAutoMtls: false
defaultHttpRetryPolicy: {attempts: 1, retryOn: 5xx, perTryTimeout: 2s}
connectTimeout: 1.5s
`,
      WHERE,
    );
    assert.equal(config.accessLogFile, '/dev/stdout');
    assert.equal(config.accessLogEncoding, 'JSON');
    assert.equal(config.accessLogFormat, '');
    assert.equal(config.outboundTrafficPolicy.mode, 'REGISTRY_ONLY');
    assert.deepEqual(config.defaultConfig, { discoveryAddress: 'istiod.mesh.svc:15012', holdApplicationUntilProxyStarts: true, proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true' }, tracing: { sampling: 10 } });
    assert.equal(config.trustDomain, 'example.org');
    assert.equal(config.rootNamespace, 'mesh-root');
    assert.equal(config.enableAutoMtls, false);
    assert.deepEqual(config.defaultHttpRetryPolicy, { attempts: 1, retryOn: '5xx', perTryTimeout: '2s' });
    assert.equal(config.connectTimeout, '1.5s');
  });

  it('refuses a bad value, naming where it came from, the field and what is valid', () => {
    assert.equal(refusal('outboundTrafficPolicy: {mode: ALLOWANY}'), `mesh config (${WHERE}): outboundTrafficPolicy.mode: "ALLOWANY" is not one of ALLOW_ANY, REGISTRY_ONLY`);
    assert.match(refusal('accessLogEncoding: XML'), /accessLogEncoding: "XML" is not one of TEXT, JSON$/);
    assert.match(refusal('enableAutoMtls: "no"'), /enableAutoMtls: expected boolean, got "no"/);
    assert.match(refusal('connectTimeout: soon'), /connectTimeout: expected a duration of at least 1ms/);
    assert.match(refusal('connectTimeout: 0s'), /connectTimeout: expected a duration of at least 1ms/);
    assert.match(refusal('defaultConfig: {proxyMetadata: {A: [1]}}'), /defaultConfig\.proxyMetadata\.A: expected string, got a list/);
    assert.match(refusal('defaultHttpRetryPolicy: {attempts: -1}'), /defaultHttpRetryPolicy\.attempts: /);
    assert.match(refusal('accessLogFile: [a]'), /accessLogFile: expected string, got a list/);
    assert.match(refusal('- a list'), /expected a MeshConfig \(an object of fields\), got a list/);
    assert.match(refusal('a: [unclosed'), /not valid YAML/);
    // Two problems: both named.
    assert.match(refusal('accessLogEncoding: XML\nrootNamespace: Not_A_Namespace'), /accessLogEncoding: .*; rootNamespace: expected a namespace name/);
  });

  it('refuses a JSON access log format that is not a JSON object of fields', () => {
    assert.match(refusal("accessLogEncoding: JSON\naccessLogFormat: '%START_TIME%'"), /accessLogFormat: with accessLogEncoding JSON, expected a JSON object of log fields, but it is not JSON/);
    assert.match(refusal("accessLogEncoding: JSON\naccessLogFormat: '[1]'"), /got a list/);
  });

  it('tolerates unknown fields and names them; Istio fields meshd does not use are listed apart', () => {
    const r = parseMeshConfig('accesLogFile: /dev/stdout\nenableTracing: true\ndiscoverySelectors: []\nzzz: 1\n', WHERE);
    assert.deepEqual(r.unknownFields, ['accesLogFile', 'zzz']);
    // extensionProviders is read since AuthorizationPolicy CUSTOM and the Telemetry API use it.
    assert.deepEqual(r.ignoredFields, ['discoverySelectors', 'enableTracing']);
    assert.equal(r.config.accessLogFile, '');
  });

  it('reads extensionProviders: ext_authz providers with their settings and defaults, other kinds as written, defaultProviders', () => {
    const { config } = parseMeshConfig(
      `extensionProviders:
- name: http
  envoyExtAuthzHttp:
    service: foo/ext-authz.foo.svc.cluster.local
    port: "8000"
    timeout: 250ms
    statusOnError: "503"
    includeHeadersInCheck: [x-old]
    includeAdditionalHeadersInCheck: {x-mesh: meshd}
    includeRequestBodyInCheck: {maxRequestBytes: 100}
- name: grpc
  envoyExtAuthzGrpc: {service: ext-authz.foo.svc.cluster.local, port: 9000, failOpen: true}
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317, resource_detectors: {environment: {}}}
- name: log
  envoyFileAccessLog: {path: /dev/stdout}
defaultProviders: {accessLogging: [log], tracing: [otel]}
`,
      WHERE,
    );
    assert.deepEqual(config.extensionProviders, [
      {
        name: 'http',
        kind: 'envoyExtAuthzHttp',
        settings: {
          service: 'foo/ext-authz.foo.svc.cluster.local',
          port: 8000,
          timeout: '250ms',
          failOpen: false,
          clearRouteCache: false,
          statusOnError: 503,
          includeRequestBodyInCheck: { maxRequestBytes: 100, allowPartialMessage: false, packAsBytes: false },
          includeRequestHeadersInCheck: ['x-old'],
          includeAdditionalHeadersInCheck: { 'x-mesh': 'meshd' },
          headersToUpstreamOnAllow: [],
          headersToDownstreamOnDeny: [],
          headersToDownstreamOnAllow: [],
        },
      },
      { name: 'grpc', kind: 'envoyExtAuthzGrpc', settings: { service: 'ext-authz.foo.svc.cluster.local', port: 9000, failOpen: true, clearRouteCache: false } },
      // Telemetry providers are typed (an unknown spelling such as resource_detectors passes, unused).
      { name: 'otel', kind: 'opentelemetry', settings: { service: 'otel.observability.svc.cluster.local', port: 4317, transport: { kind: 'grpc', initialMetadata: [] } } },
      { name: 'log', kind: 'envoyFileAccessLog', settings: { path: '/dev/stdout' } },
    ]);
    assert.deepEqual(config.defaultProviders, { accessLogging: ['log'], tracing: ['otel'] });
  });

  it('refuses bad extensionProviders, naming the field', () => {
    const bad = (provider: string): string => refusal(`extensionProviders:\n- ${provider}`);
    assert.match(bad('{name: a, envoyExtAuthzHttp: {service: "not a host", port: 80}}'), /extensionProviders\[0\]\.envoyExtAuthzHttp\.service: expected "\[<namespace>\/\]<hostname>"/);
    assert.match(bad('{name: a, envoyExtAuthzGrpc: {service: a.b.svc.cluster.local, port: 70000}}'), /extensionProviders\[0\]\.envoyExtAuthzGrpc\.port: expected a port from 1 to 65535/);
    assert.match(bad('{name: a, envoyExtAuthzGrpc: {service: a.b.svc.cluster.local}}'), /extensionProviders\[0\]\.envoyExtAuthzGrpc\.port: expected a port/);
    assert.match(bad('{name: a, envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80, statusOnError: "teapot"}}'), /envoyExtAuthzHttp\.statusOnError: expected an HTTP status code/);
    assert.match(bad('{name: a, envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80, timeout: soon}}'), /envoyExtAuthzHttp\.timeout: expected a duration/);
    assert.match(bad('{name: a, envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80, pathPrefix: check}}'), /envoyExtAuthzHttp\.pathPrefix: expected a path starting with "\/"/);
    assert.match(bad('{name: a, envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80, includeRequestBodyInCheck: {allowPartialMessage: true}}}'), /includeRequestBodyInCheck\.maxRequestBytes/);
    assert.match(bad('{name: a, envoyExtAuthzGrpc: {service: a.b.svc.cluster.local, port: 80, pathPrefix: /x}}'), /envoyExtAuthzGrpc: Unrecognized key: "pathPrefix"/);
    assert.match(bad('{name: a}'), /extensionProviders\[0\]: sets no provider: set one of envoyExtAuthzHttp, envoyExtAuthzGrpc/);
    assert.match(bad('{name: a, zipkin: {service: z.b.svc.cluster.local, port: 9411}, envoyExtAuthzGrpc: {service: a.b.svc.cluster.local, port: 80}}'), /extensionProviders\[0\]: sets envoyExtAuthzGrpc and zipkin: set exactly one/);
    assert.match(bad('{envoyExtAuthzGrpc: {service: a.b.svc.cluster.local, port: 80}}'), /extensionProviders\[0\]\.name: expected string/);
    assert.match(refusal('extensionProviders:\n- {name: a, zipkin: {service: z.b.svc.cluster.local, port: 9411}}\n- {name: a, prometheus: {}}'), /extensionProviders\[1\]\.name: "a" names another provider too/);
  });

  it("access logs: none by default; Istio's TEXT format and JSON fields; a custom format gets its newline", () => {
    assert.deepEqual(accessLogs(defaultMeshConfig()), { filter: undefined, listener: undefined });
    const text = accessLogs({ ...defaultMeshConfig(), accessLogFile: '/tmp/a.log' });
    assert.deepEqual((text.filter![0]!.typed_config as { log_format: unknown }).log_format, { text_format_source: { inline_string: ISTIO_TEXT_LOG_FORMAT } });
    assert.deepEqual(text.listener![0]!.filter, { response_flag_filter: { flags: ['NR'] } });
    const json = accessLogs({ ...defaultMeshConfig(), accessLogFile: '/tmp/a.log', accessLogEncoding: 'JSON' });
    assert.deepEqual((json.filter![0]!.typed_config as { log_format: unknown }).log_format, { json_format: { ...ISTIO_JSON_LOG_FIELDS } });
    const custom = accessLogs({ ...defaultMeshConfig(), accessLogFile: '/tmp/a.log', accessLogFormat: '%RESPONSE_CODE%', disableEnvoyListenerLog: true });
    assert.deepEqual((custom.filter![0]!.typed_config as { log_format: unknown }).log_format, { text_format_source: { inline_string: '%RESPONSE_CODE%\n' } });
    assert.equal(custom.listener, undefined);
    const customJson = accessLogs({ ...defaultMeshConfig(), accessLogFile: '/tmp/a.log', accessLogEncoding: 'JSON', accessLogFormat: '{"code": "%RESPONSE_CODE%"}' });
    assert.deepEqual((customJson.filter![0]!.typed_config as { log_format: unknown }).log_format, { json_format: { code: '%RESPONSE_CODE%' } });
  });

  it("default retries: Istio's without a policy, none with attempts 0, status codes in retryOn parsed as Istio does", () => {
    assert.equal(meshRetryPolicy(defaultMeshConfig())?.num_retries, 2);
    assert.equal(meshRetryPolicy({ ...defaultMeshConfig(), defaultHttpRetryPolicy: { attempts: 0 } }), undefined);
    const p = meshRetryPolicy({ ...defaultMeshConfig(), defaultHttpRetryPolicy: { attempts: 4, retryOn: 'reset,502,503' } })!;
    assert.equal(p.num_retries, 4);
    assert.equal(p.retry_on, 'reset,retriable-status-codes');
    assert.deepEqual(p.retriable_status_codes, [502, 503]);
  });

  it('a new mesh config is a full push after the debounce, even with nothing else changed', async () => {
    const store = new ConfigStore();
    const generator = new ConfigGenerator();
    const pushes: PushRequest[] = [];
    const ctl = new PushController({ store, generator, domain: 'cluster.local', debounceMs: 5, debounceMaxMs: 50, push: (r) => pushes.push(r), log: silentLogger });
    ctl.setMeshConfig({ ...defaultMeshConfig(), connectTimeout: '2s' });
    const first = ctl.start();
    assert.equal(first.meshConfig.connectTimeout, '2s', 'set before start: the first snapshot has it');
    ctl.setMeshConfig({ ...defaultMeshConfig(), outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } });
    await new Promise((r) => setTimeout(r, 30));
    ctl.stop();
    assert.equal(pushes.length, 1);
    assert.equal(pushes[0]!.full, true);
    assert.equal(pushes[0]!.reason, 'mesh');
    assert.equal(generator.snapshot!.meshConfig.outboundTrafficPolicy.mode, 'REGISTRY_ONLY');
  });

  it("injection: the mesh config's defaultConfig is the base, the injector ConfigMap's meshConfig.defaultConfig merges over it", () => {
    const mesh = parseMeshConfig('defaultConfig: {discoveryAddress: istiod.mesh.svc:15012, holdApplicationUntilProxyStarts: true, proxyMetadata: {A: "1"}}', WHERE).config;
    const base = { ...defaultInjectorSettings(), proxyConfig: mesh.defaultConfig };
    const s = parseInjectorSettings({ data: { values: JSON.stringify({ meshConfig: { defaultConfig: { proxyMetadata: { B: '2' }, concurrency: 4 } } }) } }, base);
    assert.deepEqual(s.proxyConfig, { discoveryAddress: 'istiod.mesh.svc:15012', holdApplicationUntilProxyStarts: true, proxyMetadata: { A: '1', B: '2' }, concurrency: 4 });
  });

  it('meshd bootstrap --mesh-config: discoveryAddress, proxyAdminPort and ISTIO_META_* proxyMetadata, flags given winning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-bootstrap-mc-'));
    try {
      const file = join(dir, 'mesh.yaml');
      writeFileSync(file, 'defaultConfig:\n  discoveryAddress: 10.1.2.3:15010\n  proxyAdminPort: 15999\n  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true", OTHER: x}\n');
      type B = { admin: { address: { socket_address: { port_value: number } } }; node: { metadata: Record<string, unknown> }; static_resources: { clusters: { load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] } }[] } };
      const withoutXdsEnv = { ...process.env };
      delete withoutXdsEnv.MESHD_XDS_ADDRESS;
      const run = (...args: string[]): B => JSON.parse(execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--mesh-config', file, '--format', 'json', ...args], { encoding: 'utf8', env: withoutXdsEnv })) as B;
      const xdsHost = (b: B): string => b.static_resources.clusters[0]!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.address;
      const b = run();
      assert.equal(xdsHost(b), '10.1.2.3');
      assert.equal(b.admin.address.socket_address.port_value, 15999);
      assert.equal(b.node.metadata.DNS_CAPTURE, 'true');
      assert.equal(b.node.metadata.OTHER, undefined, 'only ISTIO_META_* entries are node metadata');
      const flags = run('--xds-address', '127.0.0.9:15010', '--admin-port', '15001');
      assert.equal(xdsHost(flags), '127.0.0.9');
      assert.equal(flags.admin.address.socket_address.port_value, 15001);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
