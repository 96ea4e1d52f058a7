// Seeded pseudo-random mesh configurations for property tests: Services, EndpointSlices
// and Pods, and Gateways, VirtualServices and DestinationRules over them, mostly valid,
// sometimes not (bad regexes, weights not summing to 100, undefined subsets, bad
// durations, out-of-range numbers, conflicting gateway servers). Everything is raw
// Kubernetes-shaped JSON, as a YAML file or the API server would give it, and is fully
// determined by the seed.

type Json = Record<string, unknown>;

/** mulberry32: a small, fast 32-bit PRNG; the same seed always gives the same sequence. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Distinct items, between lo and hi of them (at most all). */
  some<T>(items: readonly T[], lo: number, hi: number): T[] {
    const pool = [...items];
    const n = Math.min(pool.length, this.int(lo, hi));
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0]!);
    return out;
  }

  /** Sometimes `make()`, else undefined. */
  maybe<T>(p: number, make: () => T): T | undefined {
    return this.chance(p) ? make() : undefined;
  }
}

/** Drops undefined values, so generated objects look like parsed YAML. */
function obj(fields: Record<string, unknown>): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out;
}

export interface GeneratedService {
  name: string;
  namespace: string;
  ports: { name: string; port: number }[];
  /** Pod label values of `version` its endpoints carry. */
  versions: string[];
}

export interface GeneratedCase {
  seed: number;
  /** Every object, in a deterministic order: Services, EndpointSlices, Pods, then Istio config. */
  objects: Json[];
  /** How many objects the generator deliberately made invalid (a lower bound: others may be invalid too). */
  intendedInvalid: number;
  /** The mesh config (YAML) the objects are served with: ext_authz extension providers for CUSTOM policies. */
  meshConfig: string;
}

const NAMESPACES = ['default', 'foo', 'istio-system'] as const;
const SERVICE_NAMES = ['reviews', 'ratings', 'httpbin', 'api', 'web', 'echo', 'grpc-echo'] as const;
const PORT_NAMES = ['http', 'http2', 'grpc', 'http-web', 'tcp', 'grpc-web', ''] as const;
const VERSIONS = ['v1', 'v2', 'v3'] as const;
const EXTERNAL_HOSTS = ['bookinfo.example.com', 'api.example.com', 'www.example.org', 'shop.example.com', 'example.com'] as const;
const GATEWAY_PORTS = [80, 8080, 8000, 443, 9090, 31400, 15443] as const;

const VALID_REGEXES = ['^/api/v[0-9]+/.*', '/(users|items)/\\d+', '.*\\.png$', '[a-z]+', 'foo|bar', '^$', '(?i)chrome', 'x{2,5}'];
const INVALID_REGEXES = ['(?=foo)bar', '(?!x).*', '(a)\\1', '(?<=a)b', '[z-a]', '(unclosed', '*bad'];
const VALID_DURATIONS = ['1s', '500ms', '1m30s', '2h', '0.5s', '10ms', '250us', '1m', '0s'];
const INVALID_DURATIONS = ['5 seconds', '-1s', 'abc', '1d', '', '1.s'];
const HEADER_NAMES = ['x-user', 'end-user', 'x-canary', 'user-agent', 'x-request-id', 'cookie', 'x-B3-TraceId'];
const ODD_HEADER_NAMES = [':authority', 'host', ':path', 'Content-Length', 'x-envoy-foo', 'te', 'bad header'];
const RETRY_ON = ['5xx', 'gateway-error,connect-failure', 'retriable-4xx,refused-stream', 'reset,503', 'cancelled,deadline-exceeded,unavailable', '5xx,retriable-status-codes', 'bogus-condition'];

class Generator {
  readonly objects: Json[] = [];
  intendedInvalid = 0;
  readonly services: GeneratedService[] = [];
  /** Gateways generated so far, as "ns/name". */
  private readonly gatewayRefs: string[] = [];
  /** Subset names DestinationRules define, by "namespace/name" of the service they name. */
  private readonly definedSubsets = new Map<string, string[]>();
  private ipCounter = 1;

  constructor(readonly rng: Rng) {}

  /** Whether to make this object (or this part of it) invalid. */
  private broken(p: number): boolean {
    return this.rng.chance(p);
  }

  // -------------------------------------------------------------------------------------
  // Kubernetes workloads

  services_(): void {
    const r = this.rng;
    for (const name of r.some(SERVICE_NAMES, 1, 5)) {
      const namespace = r.chance(0.7) ? 'default' : r.pick(NAMESPACES);
      const nPorts = r.int(1, 3);
      const ports: { name: string; port: number }[] = [];
      const used = new Set<number>();
      for (let i = 0; i < nPorts; i++) {
        let port = r.pick([80, 8080, 9080, 9000, 7070, 443, 3306, 15010]);
        while (used.has(port)) port = r.int(1024, 65000);
        used.add(port);
        let pn: string = r.pick(PORT_NAMES);
        if (nPorts > 1 && pn === '') pn = 'http';
        if (ports.some((p) => p.name === pn)) pn = `${pn || 'p'}-${i}`;
        ports.push({ name: pn, port });
      }
      const versions = r.some(VERSIONS, 1, 3);
      this.services.push({ name, namespace, ports, versions });
      const headless = r.chance(0.1);
      this.objects.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace },
        spec: obj({
          clusterIP: headless ? 'None' : `10.96.${r.int(0, 255)}.${r.int(1, 254)}`,
          selector: { app: name },
          ports: ports.map((p) =>
            obj({
              name: p.name === '' ? undefined : p.name,
              port: p.port,
              targetPort: r.chance(0.3) ? p.port + 1 : undefined,
              appProtocol: r.maybe(0.15, () => r.pick(['http', 'http2', 'grpc', 'kubernetes.io/h2c', 'tcp'])),
            }),
          ),
        }),
      });
      const endpoints: Json[] = [];
      const pods: Json[] = [];
      for (const version of versions) {
        const replicas = r.int(0, 2);
        for (let k = 0; k < replicas; k++) {
          const ip = this.nextIp();
          const pod = `${name}-${version}-${k}`;
          endpoints.push(
            obj({
              addresses: [ip],
              conditions: r.chance(0.2) ? { ready: r.chance(0.5), serving: r.chance(0.5), terminating: r.chance(0.3) } : undefined,
              targetRef: { kind: 'Pod', name: pod, namespace },
              zone: r.maybe(0.3, () => r.pick(['zone-a', 'zone-b'])),
            }),
          );
          pods.push({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: pod, namespace, labels: { app: name, version } },
            spec: { serviceAccountName: r.pick([name, 'default']) },
            status: { podIP: ip, phase: 'Running', conditions: [{ type: 'Ready', status: r.chance(0.9) ? 'True' : 'False' }] },
          });
        }
      }
      this.objects.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${name}-abc`, namespace, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4',
        ports: ports.map((p) => ({ name: p.name, port: r.chance(0.3) ? p.port + 1 : p.port })),
        endpoints,
      });
      this.objects.push(...pods);
    }
  }

  private nextIp(): string {
    const n = this.ipCounter++;
    return `10.1.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  }

  // -------------------------------------------------------------------------------------
  // Shared pieces

  private duration(pBad = 0.03): string {
    if (this.broken(pBad)) {
      this.intendedInvalid++;
      return this.rng.pick(INVALID_DURATIONS);
    }
    return this.rng.pick(VALID_DURATIONS);
  }

  private regex(pBad = 0.05): string {
    if (this.broken(pBad)) {
      this.intendedInvalid++;
      return this.rng.pick(INVALID_REGEXES);
    }
    return this.rng.pick(VALID_REGEXES);
  }

  private stringMatch(kind: 'uri' | 'header' | 'authority' | 'method' | 'scheme' | 'query' | 'origin'): Json {
    const r = this.rng;
    const which = r.pick(['exact', 'prefix', 'regex', 'regex'] as const);
    if (r.chance(0.005)) {
      this.intendedInvalid++;
      return r.chance(0.5) ? {} : { exact: 'a', prefix: 'b' };
    }
    if (which === 'regex') return { regex: this.regex() };
    const value =
      kind === 'uri'
        ? r.pick(['/', '/api', '/api/v1/', '/status/200', '/headers', '/a b', '/%2F', '/productpage', ''])
        : kind === 'method'
          ? r.pick(['GET', 'POST', 'PUT', 'DELETE'])
          : kind === 'scheme'
            ? r.pick(['http', 'https'])
            : kind === 'authority'
              ? r.pick(EXTERNAL_HOSTS)
              : kind === 'origin'
                ? r.pick(['https://example.com', 'http://localhost:3000', '*'])
                : r.pick(['jason', 'true', '1', '', 'Mozilla/5.0', 'a,b']);
    return { [which]: value };
  }

  private headerOps(): Json {
    const r = this.rng;
    const name = (): string => (r.chance(0.08) ? r.pick(ODD_HEADER_NAMES) : r.pick(HEADER_NAMES));
    const map = (): Record<string, string> => Object.fromEntries(Array.from({ length: r.int(1, 3) }, () => [name(), r.pick(['1', 'yes', '%DOWNSTREAM_REMOTE_ADDRESS%', '', 'a b c'])]));
    return obj({
      set: r.maybe(0.5, map),
      add: r.maybe(0.4, map),
      remove: r.maybe(0.4, () => Array.from({ length: r.int(1, 2) }, name)),
    });
  }

  private headers(): Json {
    return obj({ request: this.rng.maybe(0.6, () => this.headerOps()), response: this.rng.maybe(0.6, () => this.headerOps()) });
  }

  private percentage(): Json {
    if (this.broken(0.02)) {
      this.intendedInvalid++;
      return { value: this.rng.pick([-1, 101, 250]) };
    }
    return { value: this.rng.pick([0, 0.1, 5, 50, 99.9, 100]) };
  }

  /** A destination host: a known service (short, qualified or FQDN) or something else entirely. */
  private destinationHost(): { host: string; svc?: GeneratedService } {
    const r = this.rng;
    if (this.services.length === 0 || r.chance(0.1)) return { host: r.pick(['unknown', 'nothing.default.svc.cluster.local', 'external.example.com', '*.example.com']) };
    const svc = r.pick(this.services);
    const form = r.int(0, 2);
    const host = form === 0 ? svc.name : form === 1 ? `${svc.name}.${svc.namespace}` : `${svc.name}.${svc.namespace}.svc.cluster.local`;
    return { host, svc };
  }

  private destination(): Json {
    const r = this.rng;
    const { host, svc } = this.destinationHost();
    const defined = svc ? this.definedSubsets.get(`${svc.namespace}/${svc.name}`) : undefined;
    // Mostly subsets some DestinationRule defines; sometimes one none does (the VirtualService is then rejected).
    const subset = defined?.length && r.chance(0.5) ? r.pick(defined) : r.chance(0.04) ? r.pick(['v1', 'v2', 'canary', 'missing']) : undefined;
    const port = r.maybe(0.4, () => ({ number: svc && r.chance(0.85) ? r.pick(svc.ports).port : r.pick([80, 12345, 9080]) }));
    if (this.broken(0.005)) {
      this.intendedInvalid++;
      return { host: '', port: { number: 70000 } };
    }
    return obj({ host, subset, port });
  }

  // -------------------------------------------------------------------------------------
  // Gateways

  gateways(): void {
    const r = this.rng;
    const n = r.int(0, 3);
    for (let g = 0; g < n; g++) {
      const namespace = r.pick(NAMESPACES);
      const name = r.pick(['ingress', 'public', 'bookinfo-gateway', 'httpbin-gateway']) + (r.chance(0.3) ? `-${g}` : '');
      this.gatewayRefs.push(`${namespace}/${name}`);
      const servers: Json[] = [];
      const nServers = r.int(1, 4);
      for (let s = 0; s < nServers; s++) servers.push(this.gatewayServer());
      if (this.broken(0.04)) {
        this.intendedInvalid++;
        servers.length = 0;
      }
      this.objects.push({
        apiVersion: r.pick(['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3']),
        kind: 'Gateway',
        metadata: { name, namespace },
        spec: obj({
          selector: r.chance(0.85) ? { istio: 'ingressgateway' } : r.chance(0.5) ? { istio: 'egressgateway' } : undefined,
          servers,
        }),
      });
    }
  }

  private gatewayHost(): string {
    const r = this.rng;
    const host = r.chance(0.15) ? '*' : r.chance(0.2) ? r.pick(['*.example.com', '*.com', '*.example.org']) : r.chance(0.2) && this.services.length ? r.pick(this.services).name + '.default.svc.cluster.local' : r.pick(EXTERNAL_HOSTS);
    const prefix = r.chance(0.3) ? r.pick(['./', '*/', 'default/', 'foo/', 'istio-system/']) : '';
    return prefix + host;
  }

  private gatewayServer(): Json {
    const r = this.rng;
    const protocol = r.chance(0.8) ? r.pick(['HTTP', 'HTTP', 'http', 'HTTP2', 'GRPC', 'GRPC-WEB']) : r.chance(0.85) ? r.pick(['HTTPS', 'TCP', 'TLS', 'MONGO']) : r.pick(['UDP', 'BOGUS']);
    if (protocol === 'UDP' || protocol === 'BOGUS') this.intendedInvalid++;
    const number = r.chance(0.99) ? r.pick(GATEWAY_PORTS) : r.pick([0, 70000]);
    if (number === 0 || number === 70000) this.intendedInvalid++;
    // Hosts repeat within a server sometimes (and across servers on one port: a conflict).
    const hosts = Array.from({ length: r.int(1, 3) }, () => this.gatewayHost());
    if (r.chance(0.95)) hosts.splice(0, hosts.length, ...new Set(hosts));
    const needsTls = protocol === 'HTTPS' || protocol === 'TLS';
    const tls = needsTls
      ? r.chance(0.9)
        ? obj({ mode: r.pick(['SIMPLE', 'PASSTHROUGH', 'MUTUAL', 'ISTIO_MUTUAL']), credentialName: r.maybe(0.8, () => 'gateway-cert') })
        : undefined
      : r.maybe(0.15, () => ({ httpsRedirect: r.chance(0.7) }));
    return obj({
      port: obj({ number, name: r.maybe(0.8, () => `${protocol.toLowerCase()}-${number}`), protocol, targetPort: r.maybe(0.1, () => number + 8000) }),
      hosts,
      name: r.maybe(0.2, () => `srv-${number}`),
      tls,
    });
  }

  // -------------------------------------------------------------------------------------
  // VirtualServices

  virtualServices(): void {
    const r = this.rng;
    const n = r.int(0, 4);
    for (let v = 0; v < n; v++) {
      const namespace = r.chance(0.6) ? 'default' : r.pick(NAMESPACES);
      const hosts: string[] = [];
      for (let h = 0; h < r.int(1, 2); h++) {
        if (this.services.length && r.chance(0.5)) {
          const svc = r.pick(this.services);
          hosts.push(r.chance(0.5) ? svc.name : `${svc.name}.${svc.namespace}.svc.cluster.local`);
        } else hosts.push(r.chance(0.15) ? r.pick(['*', '*.example.com']) : r.pick(EXTERNAL_HOSTS));
      }
      let gateways: string[] | undefined;
      if (this.gatewayRefs.length && r.chance(0.6)) {
        gateways = r.some(this.gatewayRefs, 1, 2).map((ref) => {
          const [ns, name] = ref.split('/') as [string, string];
          return ns === namespace && r.chance(0.5) ? name : r.chance(0.2) ? `${name}.${ns}.svc.cluster.local` : ref;
        });
        if (r.chance(0.3)) gateways.push('mesh');
      } else if (r.chance(0.1)) gateways = ['mesh'];
      const http = Array.from({ length: r.int(1, 3) }, () => this.httpRoute());
      let spec: Json = obj({ hosts, gateways, http, exportTo: r.maybe(0.1, () => [r.pick(['.', '*', 'foo'])]) });
      if (this.broken(0.03)) {
        this.intendedInvalid++;
        spec = obj({ ...spec, hosts: r.chance(0.5) ? [] : undefined });
      }
      this.objects.push({
        apiVersion: r.pick(['networking.istio.io/v1', 'networking.istio.io/v1beta1']),
        kind: 'VirtualService',
        metadata: { name: `vs-${v}-${r.pick(['a', 'b', 'c'])}`, namespace },
        spec,
      });
    }
  }

  private httpMatch(): Json {
    const r = this.rng;
    const matchMap = (kind: 'header' | 'query'): Record<string, Json> =>
      Object.fromEntries(Array.from({ length: r.int(1, 2) }, () => [kind === 'header' ? (r.chance(0.05) ? r.pick(ODD_HEADER_NAMES) : r.pick(HEADER_NAMES)) : r.pick(['q', 'user', 'debug']), this.stringMatch(kind)]));
    return obj({
      name: r.maybe(0.2, () => r.pick(['m1', 'canary', 'api route'])),
      uri: r.maybe(0.6, () => this.stringMatch('uri')),
      scheme: r.maybe(0.05, () => this.stringMatch('scheme')),
      method: r.maybe(0.1, () => this.stringMatch('method')),
      authority: r.maybe(0.1, () => this.stringMatch('authority')),
      headers: r.maybe(0.3, () => matchMap('header')),
      withoutHeaders: r.maybe(0.1, () => matchMap('header')),
      queryParams: r.maybe(0.15, () => matchMap('query')),
      port: r.maybe(0.1, () => r.pick([80, 8080, 9080])),
      sourceLabels: r.maybe(0.1, () => ({ app: r.pick(['sleep', 'client']) })),
      gateways: r.maybe(0.08, () => [r.chance(0.5) || this.gatewayRefs.length === 0 ? 'mesh' : r.pick(this.gatewayRefs)]),
      sourceNamespace: r.maybe(0.05, () => r.pick(NAMESPACES)),
      ignoreUriCase: r.maybe(0.15, () => r.chance(0.7)),
    });
  }

  private weights(n: number): (number | undefined)[] {
    const r = this.rng;
    if (n === 1) return [r.chance(0.2) ? r.pick([100, 100, 50, 0]) : undefined];
    const mode = r.int(0, 24);
    if (mode === 0) {
      this.intendedInvalid++;
      return Array.from({ length: n }, () => r.int(0, 60)); // rarely sums to 100
    }
    if (mode === 1) return Array.from({ length: n }, () => undefined);
    const out: number[] = [];
    let left = 100;
    for (let i = 0; i < n - 1; i++) {
      const w = r.int(0, left);
      out.push(w);
      left -= w;
    }
    out.push(left);
    return out;
  }

  private httpRoute(): Json {
    const r = this.rng;
    const action = r.chance(0.025) ? r.pick(['both', 'none'] as const) : r.pick(['route', 'route', 'route', 'route', 'redirect', 'directResponse'] as const);
    if (action === 'both' || action === 'none') this.intendedInvalid++;
    const route = (): Json[] => {
      const n = r.int(1, 3);
      const weights = this.weights(n);
      return weights.map((weight) => obj({ destination: this.destination(), weight, headers: r.maybe(0.15, () => this.headers()) }));
    };
    const redirect = (): Json =>
      obj({
        uri: r.maybe(0.6, () => r.pick(['/new', '/', '/v2/path?x=1'])),
        authority: r.maybe(0.4, () => r.pick(EXTERNAL_HOSTS)),
        port: r.maybe(0.15, () => r.pick([8443, 80])),
        derivePort: r.maybe(0.05, () => r.pick(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'])),
        scheme: r.maybe(0.3, () => r.pick(['https', 'http'])),
        redirectCode: r.maybe(0.4, () => r.pick([301, 302, 303, 307, 308, 300, 399])),
      });
    const directResponse = (): Json =>
      obj({ status: r.pick([200, 204, 404, 418, 503, 599]), body: r.maybe(0.6, () => (r.chance(0.7) ? { string: r.pick(['ok', 'not found', '', '{"a":1}']) } : { bytes: 'aGVsbG8=' })) });
    const hasRoute = action === 'route' || action === 'both';
    const rewrite = r.maybe(0.2, () => {
      const regexRewrite = r.chance(0.3);
      const both = r.chance(0.05);
      if (both) this.intendedInvalid++;
      return obj({
        uri: !regexRewrite || both ? r.pick(['/', '/v1/', '/new/prefix', '']) : undefined,
        authority: r.maybe(0.3, () => r.pick(EXTERNAL_HOSTS)),
        uriRegexRewrite: regexRewrite ? { match: this.regex(0.1), rewrite: r.pick(['/\\1', '/x', '']) } : undefined,
      });
    });
    const fault = r.maybe(0.15, () =>
      obj({
        delay: r.maybe(0.6, () => obj({ fixedDelay: this.duration(), percentage: r.maybe(0.7, () => this.percentage()), percent: r.maybe(0.1, () => r.int(0, 100)) })),
        abort: r.maybe(0.6, () =>
          obj({
            httpStatus: r.chance(0.8) ? r.pick([400, 500, 503, 200, 599]) : undefined,
            grpcStatus: r.maybe(0.15, () => r.pick(['UNAVAILABLE', 'NOT_FOUND', '14'])),
            percentage: r.maybe(0.7, () => this.percentage()),
          }),
        ),
      }),
    );
    const mirrorHow = r.int(0, 9);
    return obj({
      name: r.maybe(0.3, () => r.pick(['primary', 'canary', 'r1', 'with space'])),
      match: r.maybe(0.7, () => Array.from({ length: r.int(1, 3) }, () => this.httpMatch())),
      route: hasRoute ? route() : undefined,
      redirect: action === 'redirect' || action === 'both' ? redirect() : undefined,
      directResponse: action === 'directResponse' ? directResponse() : undefined,
      rewrite,
      timeout: r.maybe(0.2, () => this.duration()),
      retries: r.maybe(0.2, () =>
        obj({
          attempts: r.pick([0, 1, 3, 10]),
          perTryTimeout: r.maybe(0.6, () => this.duration()),
          retryOn: r.maybe(0.6, () => r.pick(RETRY_ON)),
          retryRemoteLocalities: r.maybe(0.1, () => true),
        }),
      ),
      fault,
      mirror: mirrorHow === 0 ? this.destination() : undefined,
      mirrorPercentage: mirrorHow === 0 && r.chance(0.5) ? this.percentage() : undefined,
      mirrorPercent: mirrorHow === 0 && r.chance(0.1) ? r.int(0, 100) : undefined,
      mirrors: mirrorHow === 1 ? Array.from({ length: r.int(1, 2) }, () => obj({ destination: this.destination(), percentage: r.maybe(0.5, () => this.percentage()) })) : undefined,
      corsPolicy: r.maybe(0.15, () =>
        obj({
          allowOrigins: r.maybe(0.7, () => Array.from({ length: r.int(1, 2) }, () => this.stringMatch('origin'))),
          allowOrigin: r.maybe(0.1, () => ['https://legacy.example.com']),
          allowMethods: r.maybe(0.6, () => r.some(['GET', 'POST', 'PUT', 'OPTIONS'], 1, 3)),
          allowHeaders: r.maybe(0.5, () => r.some(['x-user', 'content-type', 'authorization'], 1, 2)),
          exposeHeaders: r.maybe(0.3, () => ['x-request-id']),
          maxAge: r.maybe(0.5, () => this.duration()),
          allowCredentials: r.maybe(0.4, () => r.chance(0.5)),
          unmatchedPreflights: r.maybe(0.1, () => r.pick(['UNSPECIFIED', 'FORWARD', 'IGNORE'])),
        }),
      ),
      headers: r.maybe(0.2, () => this.headers()),
    });
  }

  // -------------------------------------------------------------------------------------
  // DestinationRules

  destinationRules(): void {
    const r = this.rng;
    const n = r.int(0, 3);
    for (let d = 0; d < n; d++) {
      const namespace = r.chance(0.7) ? 'default' : r.pick(NAMESPACES);
      const { host, svc } = this.destinationHost();
      const subsets = r.maybe(0.7, () =>
        (svc && r.chance(0.8) ? r.some(svc.versions, 1, 3) : r.some(VERSIONS, 1, 2)).map((version) =>
          obj({ name: version, labels: r.chance(0.9) ? { version } : { app: 'nothing' }, trafficPolicy: r.maybe(0.2, () => this.trafficPolicy(svc)) }),
        ),
      );
      if (subsets && r.chance(0.05)) subsets.push({ name: r.pick(['canary', 'v1']), labels: { track: 'canary' } });
      if (svc && subsets) {
        const key = `${svc.namespace}/${svc.name}`;
        this.definedSubsets.set(key, [...(this.definedSubsets.get(key) ?? []), ...subsets.map((x) => String(x.name))]);
      }
      let spec: Json = obj({
        host,
        trafficPolicy: r.maybe(0.7, () => this.trafficPolicy(svc)),
        subsets,
        exportTo: r.maybe(0.05, () => ['.']),
      });
      if (this.broken(0.02)) {
        this.intendedInvalid++;
        spec = { ...spec, host: '' };
      }
      this.objects.push({
        apiVersion: r.pick(['networking.istio.io/v1', 'networking.istio.io/v1beta1']),
        kind: 'DestinationRule',
        metadata: { name: `dr-${d}`, namespace },
        spec,
      });
    }
  }

  private loadBalancer(): Json {
    const r = this.rng;
    if (r.chance(0.5)) return { simple: r.pick(['RANDOM', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'PASSTHROUGH', 'UNSPECIFIED']) };
    const which = r.int(0, 4);
    const hash: Json =
      which === 0
        ? { httpHeaderName: r.pick(HEADER_NAMES) }
        : which === 1
          ? { httpCookie: obj({ name: r.pick(['session', 'user']), path: r.maybe(0.5, () => '/'), ttl: r.maybe(0.7, () => this.duration()) }) }
          : which === 2
            ? { useSourceIp: true }
            : which === 3
              ? { httpQueryParameterName: r.pick(['user', 'id']) }
              : { httpHeaderName: 'x-user', maglev: { tableSize: r.pick([65537, 307, 1, 100, 0]) } };
    // Envoy's largest ring (8388608) is valid but takes envoy --mode validate over 30 s to
    // build for a few clusters; 65536 stands for "large", 16777216 for "over the limit".
    if (r.chance(0.3)) hash.minimumRingSize = r.pick([1024, 0, 65536, 16777216]);
    if (r.chance(0.1)) hash.ringHash = { minimumRingSize: r.pick([64, 1024]) };
    return obj({ consistentHash: hash, warmupDurationSecs: r.maybe(0.05, () => this.duration()) });
  }

  private trafficPolicy(svc: GeneratedService | undefined, portLevel = true): Json {
    const r = this.rng;
    const bad = this.broken(0.03);
    if (bad) this.intendedInvalid++;
    return obj({
      loadBalancer: r.maybe(0.5, () => this.loadBalancer()),
      connectionPool: r.maybe(0.5, () =>
        obj({
          tcp: r.maybe(0.6, () =>
            obj({
              maxConnections: bad ? -1 : r.maybe(0.7, () => r.pick([0, 1, 100, 2147483647])),
              connectTimeout: r.maybe(0.5, () => this.duration()),
              tcpKeepalive: r.maybe(0.2, () => obj({ probes: r.pick([1, 9]), time: this.duration(), interval: this.duration() })),
              maxConnectionDuration: r.maybe(0.1, () => this.duration()),
              idleTimeout: r.maybe(0.1, () => this.duration()),
            }),
          ),
          http: r.maybe(0.6, () =>
            obj({
              http1MaxPendingRequests: r.maybe(0.5, () => r.pick([0, 1, 1024])),
              http2MaxRequests: r.maybe(0.5, () => r.pick([0, 1, 1024])),
              maxRequestsPerConnection: r.maybe(0.5, () => r.pick([0, 1, 5])),
              maxRetries: r.maybe(0.3, () => r.pick([0, 3])),
              idleTimeout: r.maybe(0.3, () => this.duration()),
              h2UpgradePolicy: r.maybe(0.2, () => r.pick(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'])),
              useClientProtocol: r.maybe(0.1, () => true),
              maxConcurrentStreams: r.maybe(0.1, () => r.pick([1, 100])),
            }),
          ),
        }),
      ),
      outlierDetection: r.maybe(0.4, () =>
        obj({
          consecutiveErrors: r.maybe(0.1, () => r.int(0, 10)),
          consecutive5xxErrors: r.maybe(0.5, () => r.int(0, 10)),
          consecutiveGatewayErrors: r.maybe(0.3, () => r.int(0, 10)),
          consecutiveLocalOriginFailures: r.maybe(0.1, () => r.int(0, 5)),
          splitExternalLocalOriginErrors: r.maybe(0.1, () => true),
          interval: r.maybe(0.5, () => this.duration()),
          baseEjectionTime: r.maybe(0.5, () => this.duration()),
          maxEjectionPercent: r.maybe(0.5, () => (bad ? 150 : r.pick([0, 10, 50, 100]))),
          minHealthPercent: r.maybe(0.2, () => r.pick([0, 50, 100])),
        }),
      ),
      tls: r.maybe(0.15, () => obj({ mode: r.pick(['DISABLE', 'ISTIO_MUTUAL', 'SIMPLE']), sni: r.maybe(0.3, () => 'reviews.example.com') })),
      portLevelSettings:
        portLevel && r.chance(0.2)
          ? Array.from({ length: r.int(1, 2) }, () => ({ port: { number: svc && r.chance(0.8) ? r.pick(svc.ports).port : 9999 }, ...this.trafficPolicy(svc, false) }))
          : undefined,
    });
  }

  // -------------------------------------------------------------------------------------
  // RequestAuthentications (security.istio.io): every scope and jwtRule field

  requestAuthentications(): void {
    const r = this.rng;
    const n = r.int(0, 3);
    const JWKS_URIS = ['https://accounts.example.com/.well-known/jwks.json', 'http://10.0.7.7:8081/jwks', 'https://[2001:db8::7]/keys', 'http://jwks.default.svc.cluster.local/keys'];
    for (let i = 0; i < n; i++) {
      const namespace = r.pick(NAMESPACES);
      const svc = this.services.length > 0 && r.chance(0.6) ? r.pick(this.services) : undefined;
      const jwtRules = Array.from({ length: r.int(1, 3) }, (_, k) => {
        const remote = r.chance(0.6);
        return obj({
          issuer: `https://issuer-${i}-${k}.example.com`,
          audiences: r.maybe(0.4, () => r.some(['httpbin', 'api.example.com', 'web'], 1, 2)),
          jwksUri: remote ? r.pick(JWKS_URIS) : undefined,
          jwks: remote ? undefined : INLINE_JWKS,
          fromHeaders: r.maybe(0.3, () => r.some([{ name: 'x-jwt-assertion' }, { name: 'authorization', prefix: 'Bearer ' }, { name: 'x-token', prefix: 'Token ' }], 1, 2)),
          fromParams: r.maybe(0.2, () => r.some(['token', 'access_token'], 1, 2)),
          fromCookies: r.maybe(0.2, () => r.some(['session', 'jwt'], 1, 2)),
          outputPayloadToHeader: r.maybe(0.3, () => 'x-jwt-payload'),
          forwardOriginalToken: r.maybe(0.3, () => r.chance(0.5)),
          outputClaimToHeaders: r.maybe(0.3, () => r.some([{ header: 'x-jwt-sub', claim: 'sub' }, { header: 'x-jwt-group', claim: 'group' }], 1, 2)),
          timeout: r.maybe(0.2, () => r.pick(['1s', '500ms', '10s'])),
        });
      });
      let spec: Json = obj({
        selector: svc && r.chance(0.7) ? { matchLabels: { app: svc.name } } : r.maybe(0.1, () => ({ matchLabels: { istio: 'ingressgateway' } })),
        jwtRules,
      });
      if (this.broken(0.05)) {
        this.intendedInvalid++;
        spec = { ...spec, jwtRules: [{ jwksUri: 'ftp://keys.example.com/jwks' }] };
      }
      this.objects.push({ apiVersion: r.pick(['security.istio.io/v1', 'security.istio.io/v1beta1']), kind: 'RequestAuthentication', metadata: { name: `ra-${i}`, namespace }, spec });
    }
  }

  // -------------------------------------------------------------------------------------
  // AuthorizationPolicies (security.istio.io): every action, scope, field and `when` key

  /** Extension providers on a generated service port (or on a service that does not exist), with random settings. */
  meshConfig(): string {
    const r = this.rng;
    const svc = this.services.length > 0 && r.chance(0.9) ? r.pick(this.services) : undefined;
    const service = svc ? `${r.chance(0.5) ? `${svc.namespace}/` : ''}${svc.name}.${svc.namespace}.svc.cluster.local` : 'missing.default.svc.cluster.local';
    const port = svc ? r.pick(svc.ports).port : 9000;
    const common = (): Json =>
      obj({
        service,
        port,
        timeout: r.maybe(0.5, () => r.pick(['250ms', '2s', '1m'])),
        failOpen: r.maybe(0.5, () => r.chance(0.5)),
        statusOnError: r.maybe(0.3, () => r.pick(['403', '503'])),
        includeRequestBodyInCheck: r.maybe(0.3, () => obj({ maxRequestBytes: r.int(1, 65536), allowPartialMessage: r.maybe(0.5, () => r.chance(0.5)), packAsBytes: r.maybe(0.5, () => r.chance(0.5)) })),
      });
    const headers = (): string[] | undefined => r.maybe(0.5, () => r.some(['x-ext-authz', 'authorization', 'x-user-*', '*-id', 'cookie'], 1, 3));
    const http = obj({
      ...common(),
      pathPrefix: r.maybe(0.3, () => r.pick(['/check', '/authz/v1'])),
      includeRequestHeadersInCheck: headers(),
      includeAdditionalHeadersInCheck: r.maybe(0.3, () => ({ 'x-mesh': 'meshd', 'x-b': 'b' })),
      headersToUpstreamOnAllow: headers(),
      headersToDownstreamOnDeny: headers(),
      headersToDownstreamOnAllow: headers(),
    });
    return JSON.stringify({ extensionProviders: [{ name: 'ext-authz-http', envoyExtAuthzHttp: http }, { name: 'ext-authz-grpc', envoyExtAuthzGrpc: common() }] });
  }

  authorizationPolicies(): void {
    const r = this.rng;
    const n = r.int(0, 4);
    const values = (pool: readonly string[]): string[] => r.some(pool, 1, 3);
    const PRINCIPALS = ['cluster.local/ns/default/sa/sleep', 'cluster.local/ns/foo/*', '*/sa/admin', '*'];
    const NAMESPACE_VALUES = ['default', 'foo', 'team-*', '*-prod', '*'];
    const IPS = ['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '10.1.0.1'];
    const PATHS = ['/headers', '/status/*', '*.json', '*', '/'];
    const source = (): Json =>
      obj({
        principals: r.maybe(0.4, () => values(PRINCIPALS)),
        notPrincipals: r.maybe(0.15, () => values(PRINCIPALS)),
        requestPrincipals: r.maybe(0.2, () => values(['https://issuer.example.com/alice', 'https://issuer.example.com/*', '*/bob', '*'])),
        notRequestPrincipals: r.maybe(0.1, () => ['*']),
        namespaces: r.maybe(0.3, () => values(NAMESPACE_VALUES)),
        notNamespaces: r.maybe(0.1, () => values(NAMESPACE_VALUES)),
        serviceAccounts: r.maybe(0.1, () => values(['sleep', 'foo/curl'])),
        ipBlocks: r.maybe(0.2, () => values(IPS)),
        notIpBlocks: r.maybe(0.1, () => values(IPS)),
        remoteIpBlocks: r.maybe(0.1, () => values(IPS)),
        notRemoteIpBlocks: r.maybe(0.1, () => values(IPS)),
      });
    const operation = (): Json =>
      obj({
        hosts: r.maybe(0.2, () => values(['httpbin.default.svc.cluster.local', '*.example.com', 'api.*', '*'])),
        notHosts: r.maybe(0.1, () => ['admin.example.com']),
        ports: r.maybe(0.3, () => values(['80', '8080', '9000', '3306'])),
        notPorts: r.maybe(0.1, () => ['15000']),
        methods: r.maybe(0.4, () => values(['GET', 'POST', 'DELETE', '*'])),
        notMethods: r.maybe(0.1, () => ['PATCH']),
        paths: r.maybe(0.4, () => values(PATHS)),
        notPaths: r.maybe(0.1, () => values(PATHS)),
      });
    const CONDITIONS: [string, readonly string[]][] = [
      ['request.headers[x-user]', ['alice', 'beta-*', '*']],
      ['source.ip', IPS],
      ['remote.ip', IPS],
      ['source.namespace', NAMESPACE_VALUES],
      ['source.principal', PRINCIPALS],
      ['request.auth.principal', ['https://issuer.example.com/alice', '*']],
      ['request.auth.audiences', ['httpbin', 'api-*']],
      ['request.auth.presenter', ['web-app']],
      ['request.auth.claims[groups]', ['admins', '*-ops']],
      ['request.auth.claims[realm][role]', ['ops']],
      ['destination.ip', IPS],
      ['destination.port', ['8080', '9000']],
      ['connection.sni', ['*.svc.cluster.local', 'example.com']],
    ];
    const nonEmpty = (o: Json, fallback: Json): Json => (Object.keys(o).length > 0 ? o : fallback);
    for (let i = 0; i < n; i++) {
      const namespace = r.pick(NAMESPACES);
      const action = r.pick(['ALLOW', 'ALLOW', 'DENY', 'DENY', 'AUDIT', 'CUSTOM', undefined] as const);
      const svc = this.services.length > 0 && r.chance(0.6) ? r.pick(this.services) : undefined;
      const rules = r.maybe(0.9, () =>
        Array.from({ length: r.int(0, 3) }, () =>
          obj({
            from: r.maybe(0.6, () => Array.from({ length: r.int(1, 2) }, () => ({ source: nonEmpty(source(), { namespaces: ['foo'] }) }))),
            to: r.maybe(0.6, () => Array.from({ length: r.int(1, 2) }, () => ({ operation: nonEmpty(operation(), { methods: ['GET'] }) }))),
            when: r.maybe(0.4, () =>
              r.some(CONDITIONS, 1, 3).map(([key, pool]) => obj({ key, values: values(pool), notValues: r.maybe(0.3, () => values(pool)) })),
            ),
          }),
        ),
      );
      let spec: Json = obj({
        selector: svc && r.chance(0.7) ? { matchLabels: { app: svc.name } } : r.maybe(0.1, () => ({ matchLabels: { istio: 'ingressgateway' } })),
        action,
        // Two providers of the mesh config (extensionProviders) and one it lacks (fail closed).
        provider: action === 'CUSTOM' ? { name: r.pick(['ext-authz-http', 'ext-authz-grpc', 'ext-authz']) } : undefined,
        rules,
      });
      if (this.broken(0.05)) {
        this.intendedInvalid++;
        spec = { ...spec, rules: [{ to: [{ operation: { paths: ['/api/*/items'] } }], when: [{ key: 'request.method', values: ['GET'] }] }] };
      }
      this.objects.push({
        apiVersion: r.pick(['security.istio.io/v1', 'security.istio.io/v1beta1']),
        kind: 'AuthorizationPolicy',
        metadata: obj({ name: `ap-${i}`, namespace, annotations: r.maybe(0.1, () => ({ 'istio.io/dry-run': 'true' })) }),
        spec,
      });
    }
  }
}

/** A public RSA key (its private half was thrown away): the inline JWKS generated RequestAuthentications carry. */
const INLINE_JWKS = JSON.stringify({
  keys: [
    {
      kty: 'RSA',
      n: '1EdczZ7ocXRX8cgzkvQ4VY8KL3oha45ViYfKK0ux3hzVYtleXplGXnkhH-hKpO4clVO-j1L9KjzdDmcDv4hI3I1DA6Rwh-LwExxF3WRzR7WFdcMpfT-RpxxCqjcix9uy_7mgFkLhtiKT9URMDzf53K8Gtfke7f4KPVuEmiFaFRz75bIJN0G5fOM5pHapxQOgwgx9FXN8jg0Uu5v-KZFmjQLtHPC5BFjERJkpBh_uFfyIkkl_hFsZc5eHNbXXK6h6YgPgq7ZjQ0BtQKv-iyySlgpYIB1jxxajEf8n0grlZthsLcZc5ybmPtFKrwN6Vq-PgJW-aE39XvwRTN_RD1HOjQ',
      e: 'AQAB',
      kid: 'fuzz',
      alg: 'RS256',
    },
  ],
});

/** Generates one case; the same seed always gives the same objects. */
export function generateCase(seed: number): GeneratedCase {
  const g = new Generator(new Rng(seed));
  g.services_();
  g.destinationRules();
  g.gateways();
  g.virtualServices();
  g.authorizationPolicies();
  g.requestAuthentications();
  return { seed, objects: g.objects, intendedInvalid: g.intendedInvalid, meshConfig: g.meshConfig() };
}
