// Writes manifests/base/crds.yaml: the CustomResourceDefinitions of the Istio kinds meshd
// reads: networking.istio.io Gateway, VirtualService, DestinationRule, Sidecar, ServiceEntry
// and WorkloadEntry, security.istio.io PeerAuthentication, AuthorizationPolicy and
// RequestAuthentication, and telemetry.istio.io Telemetry.
//
//   node manifests/tools/gen-crds.mjs           rewrite manifests/base/crds.yaml
//   node manifests/tools/gen-crds.mjs --check   exit 1 when the file is out of date
//
// The schemas are structural (every field typed, nothing preserved but `status`), so the
// API server prunes unknown fields and rejects wrong types. Each networking kind is served
// at v1 (the storage version), v1beta1 and v1alpha3 with the same schema, as Istio does, so
// no conversion webhook is needed; PeerAuthentication at v1 (storage) and v1beta1, with
// CEL rules for what a structural schema cannot say (port-number keys, portLevelMtls only
// with a selector). Field names and types follow Istio's APIs:
// 32-bit integers are `integer`, 64-bit ones are int-or-string (protobuf's JSON form
// writes them as strings), durations are strings such as "1s", "250ms" or "1h30m",
// wrapper types (BoolValue, UInt32Value) are nullable.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'base', 'crds.yaml');
const NETWORKING = { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'], storage: 'v1', categories: ['istio-io', 'networking-istio-io'] };
const SECURITY = { group: 'security.istio.io', versions: ['v1', 'v1beta1'], storage: 'v1', categories: ['istio-io', 'security-istio-io'] };
const TELEMETRY = { group: 'telemetry.istio.io', versions: ['v1', 'v1alpha1'], storage: 'v1', categories: ['istio-io', 'telemetry-istio-io'] };

// --- schema building blocks ----------------------------------------------------------------

const withDesc = (schema, description) => (description ? { description, ...schema } : schema);
const str = (description) => withDesc({ type: 'string' }, description);
const bool = (description) => withDesc({ type: 'boolean' }, description);
/** google.protobuf.BoolValue: unset, true or false. */
const nullableBool = (description) => withDesc({ type: 'boolean', nullable: true }, description);
const int32 = (description) => withDesc({ type: 'integer', format: 'int32' }, description);
const uint32 = (description) => withDesc({ type: 'integer', minimum: 0, maximum: 4294967295 }, description);
/** google.protobuf.UInt32Value: unset or a uint32. */
const nullableUint32 = (description) => withDesc({ type: 'integer', minimum: 0, maximum: 4294967295, nullable: true }, description);
/** uint64: protobuf's JSON mapping writes it as a string, and accepts a number too. */
const uint64 = (description) => withDesc({ 'x-kubernetes-int-or-string': true }, description);
const portNumber = (description) => withDesc({ type: 'integer', minimum: 1, maximum: 65535 }, description);
const double = (description) => withDesc({ type: 'number', format: 'double' }, description);
const enumOf = (values, description) => withDesc({ type: 'string', enum: values }, description);
/** A duration as Istio writes it: one or more <number><unit> with units h, m, s, ms, us, ns. */
const duration = (description) =>
  withDesc({ type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$' }, description);
const arr = (items, description) => withDesc({ type: 'array', items }, description);
const strings = (description) => arr(str(), description);
const obj = (properties, extra = {}) => ({ type: 'object', properties, ...extra });
const map = (values, description) => withDesc({ type: 'object', additionalProperties: values }, description);
const stringMap = (description) => map(str(), description);

// --- shared Istio messages ------------------------------------------------------------------

/** StringMatch: exactly one of exact, prefix or regex (RE2). */
const stringMatch = (description) =>
  withDesc(
    obj(
      {
        exact: str('Exact string match.'),
        prefix: str('Prefix-based match.'),
        regex: str('RE2 regular expression match.'),
      },
      { maxProperties: 1 },
    ),
    description,
  );

const percent = (description) =>
  withDesc(obj({ value: { ...double('Percentage in the range [0.0, 100.0].'), minimum: 0, maximum: 100 } }), description);

const portSelector = (description) => withDesc(obj({ number: uint32('Port number.') }), description);

const destination = (description) =>
  withDesc(
    obj(
      {
        host: str('Service name in the service registry (a short name is resolved in the rule\'s namespace).'),
        subset: str('Name of a subset defined by a DestinationRule for this host.'),
        port: portSelector('Port on the host; needed when the service exposes several ports.'),
      },
      { required: ['host'] },
    ),
    description,
  );

const headerOperations = obj({
  set: stringMap('Overwrite these headers.'),
  add: stringMap('Append these headers.'),
  remove: strings('Remove these headers.'),
});
const headers = (description) => withDesc(obj({ request: headerOperations, response: headerOperations }), description);

const routeDestination = obj(
  {
    destination: destination('Where the traffic goes.'),
    weight: int32('Share of the traffic sent to this destination.'),
  },
  { required: ['destination'] },
);

// --- Gateway --------------------------------------------------------------------------------

const tlsProtocolVersion = (description) => enumOf(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'], description);

const serverTLS = obj({
  httpsRedirect: bool('Redirect HTTP requests on this server to HTTPS with a 301.'),
  mode: enumOf(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'], 'How TLS is terminated (or not) on this port.'),
  serverCertificate: str('Path of the server certificate file.'),
  privateKey: str('Path of the server private key file.'),
  caCertificates: str('Path of the CA bundle used to verify client certificates.'),
  caCrl: str('Path of the certificate revocation list.'),
  credentialName: str('Name of a Secret holding the certificate, key and optionally the CA.'),
  credentialNames: strings('Several Secrets (e.g. one RSA and one ECDSA certificate).'),
  tlsCertificates: arr(
    obj({ serverCertificate: str(), privateKey: str(), caCertificates: str() }),
    'Several certificate/key file pairs.',
  ),
  subjectAltNames: strings('Accepted subject alternative names of client certificates.'),
  verifyCertificateSpki: strings('Accepted SPKI hashes (base64) of client certificates.'),
  verifyCertificateHash: strings('Accepted hex SHA-256 hashes of client certificates.'),
  minProtocolVersion: tlsProtocolVersion('Lowest TLS version accepted.'),
  maxProtocolVersion: tlsProtocolVersion('Highest TLS version accepted.'),
  cipherSuites: strings('Accepted cipher suites.'),
});

const gatewaySpec = obj({
  selector: stringMap('Labels of the gateway pods (proxies) this configuration applies to.'),
  servers: arr(
    obj(
      {
        port: obj(
          {
            number: portNumber('Port number the proxy listens on (the Service port).'),
            protocol: str('HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP or TLS.'),
            name: str('Port name.'),
            targetPort: uint32('Port on the workload the traffic is forwarded to (deprecated in Istio).'),
          },
          { required: ['number', 'protocol', 'name'] },
        ),
        bind: str('IP address or Unix socket the listener binds to.'),
        hosts: strings('Hosts exposed by this server, each optionally prefixed "namespace/".'),
        tls: serverTLS,
        defaultEndpoint: str('Where traffic is forwarded by default, 127.0.0.1:PORT or a Unix socket.'),
        name: str('Optional name of the server, unique across servers.'),
      },
      { required: ['port', 'hosts'] },
    ),
    'Listeners of the gateway.',
  ),
});

// --- VirtualService -------------------------------------------------------------------------

const httpMatchRequest = obj({
  name: str('Name of the match, appended to the route name in logs.'),
  uri: stringMatch('Match on the request path.'),
  scheme: stringMatch('Match on the URI scheme.'),
  method: stringMatch('Match on the HTTP method.'),
  authority: stringMatch('Match on the authority (Host) header.'),
  headers: map(stringMatch(), 'Match on request headers (lowercase names).'),
  withoutHeaders: map(stringMatch(), 'Match requests that do NOT have these headers.'),
  queryParams: map(stringMatch(), 'Match on query parameters.'),
  port: uint32('Match on the port the request arrived at.'),
  sourceLabels: stringMap('Match workloads with these labels (sidecars only).'),
  gateways: strings('Gateways this match applies to; overrides the top-level gateways.'),
  sourceNamespace: str('Match workloads in this namespace.'),
  ignoreUriCase: bool('Make the uri match case-insensitive.'),
  statPrefix: str('Prefix for this route\'s statistics.'),
});

const httpRedirect = obj({
  uri: str('Replace the path with this value.'),
  authority: str('Replace the authority (Host) with this value.'),
  port: uint32('Port in the redirect URL.'),
  derivePort: enumOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'], 'How the redirect port is chosen.'),
  scheme: str('Scheme of the redirect URL.'),
  redirectCode: uint32('HTTP status of the redirect (default 301).'),
});

const httpDirectResponse = obj(
  {
    status: uint32('HTTP status code of the response.'),
    body: obj(
      {
        string: str('Body as text.'),
        bytes: withDesc({ type: 'string', format: 'byte' }, 'Body as base64-encoded bytes.'),
      },
      { maxProperties: 1 },
    ),
  },
  { required: ['status'] },
);

const httpRewrite = obj({
  uri: str('Replace the matched part of the path (prefix or the whole path) with this value.'),
  authority: str('Replace the authority (Host) header.'),
  uriRegexRewrite: obj({ match: str('RE2 regular expression.'), rewrite: str('Replacement, may use capture groups (\\1).') }),
});

const httpRetry = obj({
  attempts: int32('Number of retries for a request.'),
  perTryTimeout: duration('Timeout of each attempt, >= 1ms.'),
  retryOn: str('Comma-separated Envoy retry conditions (e.g. 5xx,connect-failure) and status codes.'),
  retryRemoteLocalities: nullableBool('Whether retries may go to other localities.'),
  retryIgnorePreviousHosts: nullableBool('Whether retries avoid hosts already tried.'),
  backoff: duration('Base interval between retries.'),
});

const httpFault = obj({
  delay: obj({
    fixedDelay: duration('Delay added before forwarding the request.'),
    exponentialDelay: duration('Not implemented by Istio.'),
    percentage: percent('Share of requests delayed.'),
    percent: int32('Deprecated integer percentage; use percentage.'),
  }),
  abort: obj({
    httpStatus: int32('HTTP status returned to the client.'),
    grpcStatus: str('gRPC status returned to the client, e.g. UNAVAILABLE.'),
    http2Error: str('Not implemented by Istio.'),
    percentage: percent('Share of requests aborted.'),
  }),
});

const corsPolicy = obj({
  allowOrigins: arr(stringMatch(), 'Origins allowed to make requests.'),
  allowOrigin: strings('Deprecated; use allowOrigins.'),
  allowMethods: strings('Access-Control-Allow-Methods.'),
  allowHeaders: strings('Access-Control-Allow-Headers.'),
  exposeHeaders: strings('Access-Control-Expose-Headers.'),
  maxAge: duration('Access-Control-Max-Age.'),
  allowCredentials: nullableBool('Access-Control-Allow-Credentials.'),
  unmatchedPreflights: enumOf(['UNSPECIFIED', 'FORWARD', 'IGNORE'], 'What to do with preflight requests whose origin does not match.'),
});

const httpRoute = obj({
  name: str('Name of the route, for logs and debugging.'),
  match: arr(httpMatchRequest, 'Conditions (ORed) for the route to apply.'),
  route: arr(
    obj(
      {
        destination: destination('Where the traffic goes.'),
        weight: int32('Share of the traffic sent to this destination.'),
        headers: headers('Header changes for this destination.'),
      },
      { required: ['destination'] },
    ),
    'Weighted destinations.',
  ),
  redirect: httpRedirect,
  directResponse: httpDirectResponse,
  delegate: obj({ name: str('Name of the delegate VirtualService.'), namespace: str('Its namespace.') }),
  rewrite: httpRewrite,
  timeout: duration('Request timeout.'),
  retries: httpRetry,
  fault: httpFault,
  mirror: destination('Also send a copy of each request here.'),
  mirrorPercent: nullableUint32('Deprecated; use mirrorPercentage.'),
  mirrorPercentage: percent('Share of requests mirrored (default 100).'),
  mirrors: arr(
    obj({ destination: destination('Where the copy goes.'), percentage: percent('Share of requests mirrored.') }, { required: ['destination'] }),
    'Several mirror destinations.',
  ),
  corsPolicy,
  headers: headers('Header changes for all destinations of this route.'),
});

const l4Match = obj({
  destinationSubnets: strings('IPv4/IPv6 addresses or CIDRs of the destination.'),
  port: uint32('Port the connection is addressed to.'),
  sourceLabels: stringMap('Match workloads with these labels.'),
  gateways: strings('Gateways this match applies to.'),
  sourceNamespace: str('Match workloads in this namespace.'),
  sourceSubnet: str('Deprecated: source IPv4/IPv6 address or CIDR.'),
});

const tlsMatch = obj(
  {
    sniHosts: strings('SNI names to match; wildcards allowed.'),
    destinationSubnets: strings('IPv4/IPv6 addresses or CIDRs of the destination.'),
    port: uint32('Port the connection is addressed to.'),
    sourceLabels: stringMap('Match workloads with these labels.'),
    gateways: strings('Gateways this match applies to.'),
    sourceNamespace: str('Match workloads in this namespace.'),
  },
  { required: ['sniHosts'] },
);

const virtualServiceSpec = obj({
  hosts: strings('Destination hosts this routing applies to (names, wildcards, or IPs for sidecars).'),
  gateways: strings('Gateways (namespace/name) and/or "mesh" the routes apply to; default "mesh".'),
  http: arr(httpRoute, 'Ordered HTTP routes; the first match wins.'),
  tls: arr(obj({ match: arr(tlsMatch), route: arr(routeDestination) }, { required: ['match'] }), 'Routes for unterminated TLS (by SNI).'),
  tcp: arr(obj({ match: arr(l4Match), route: arr(routeDestination) }), 'Routes for opaque TCP traffic.'),
  exportTo: strings('Namespaces this VirtualService is visible in ("." or "*"); default all.'),
});

// --- DestinationRule ------------------------------------------------------------------------

const loadBalancer = obj({
  simple: enumOf(['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN'], 'Standard load-balancing algorithm.'),
  consistentHash: obj({
    httpHeaderName: str('Hash on this request header.'),
    httpCookie: obj(
      {
        name: str('Cookie name.'),
        path: str('Cookie path.'),
        ttl: duration('Lifetime of the generated cookie.'),
        attributes: arr(obj({ name: str(), value: str() }, { required: ['name'] }), 'Extra cookie attributes.'),
      },
      { required: ['name'] },
    ),
    useSourceIp: bool('Hash on the source IP address.'),
    httpQueryParameterName: str('Hash on this query parameter.'),
    ringHash: obj({ minimumRingSize: uint64('Minimum number of ring entries.') }),
    maglev: obj({ tableSize: uint64('Maglev table size (a prime).') }),
    minimumRingSize: uint64('Deprecated; use ringHash.minimumRingSize.'),
  }),
  localityLbSetting: obj({
    distribute: arr(
      obj({ from: str('Origin locality, region/zone/subzone, may end in *.'), to: map(uint32(), 'Destination localities and their weights.') }),
      'Explicit traffic distribution between localities.',
    ),
    failover: arr(obj({ from: str('Origin region.'), to: str('Region traffic fails over to.') }), 'Region failover order.'),
    failoverPriority: strings('Ordered labels used to sort endpoints for failover.'),
    enabled: nullableBool('Enable locality load balancing for this rule.'),
  }),
  warmupDurationSecs: duration('Slow-start window for new endpoints.'),
});

const connectionPool = obj({
  tcp: obj({
    maxConnections: int32('Maximum connections to a destination host.'),
    connectTimeout: duration('TCP connect timeout.'),
    tcpKeepalive: obj({
      probes: uint32('Unanswered probes before the connection is dropped.'),
      time: duration('Idle time before probes are sent.'),
      interval: duration('Time between probes.'),
    }),
    maxConnectionDuration: duration('Maximum lifetime of a connection.'),
    idleTimeout: duration('Idle timeout of a TCP connection.'),
  }),
  http: obj({
    http1MaxPendingRequests: int32('Maximum queued requests waiting for a connection.'),
    http2MaxRequests: int32('Maximum active requests to a destination.'),
    maxRequestsPerConnection: int32('Requests per connection before it is closed (1 disables keep-alive).'),
    maxRetries: int32('Maximum outstanding retries to all hosts of a cluster.'),
    idleTimeout: duration('Idle timeout of an upstream connection pool connection.'),
    h2UpgradePolicy: enumOf(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'], 'Whether HTTP/1.1 connections are upgraded to HTTP/2.'),
    useClientProtocol: bool('Use the downstream protocol upstream.'),
    maxConcurrentStreams: int32('Maximum concurrent streams per HTTP/2 connection.'),
  }),
});

const outlierDetection = obj({
  splitExternalLocalOriginErrors: bool('Count local-origin failures separately.'),
  consecutiveLocalOriginFailures: nullableUint32('Local-origin failures before ejection.'),
  consecutiveGatewayErrors: nullableUint32('Gateway errors (502, 503, 504) before ejection.'),
  consecutive5xxErrors: nullableUint32('5xx errors before ejection.'),
  consecutiveErrors: int32('Deprecated; use consecutive5xxErrors.'),
  interval: duration('Time between ejection sweeps.'),
  baseEjectionTime: duration('Minimum ejection duration.'),
  maxEjectionPercent: int32('Maximum percentage of hosts ejected.'),
  minHealthPercent: int32('Outlier detection stops below this percentage of healthy hosts.'),
});

const clientTLS = obj({
  mode: enumOf(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'], 'TLS towards the upstream.'),
  clientCertificate: str('Path of the client certificate file (MUTUAL).'),
  privateKey: str('Path of the client private key file (MUTUAL).'),
  caCertificates: str('Path of the CA bundle used to verify the server.'),
  caCrl: str('Path of the certificate revocation list.'),
  credentialName: str('Name of a Secret holding the client certificate, key and CA.'),
  subjectAltNames: strings('Accepted subject alternative names of the server certificate.'),
  sni: str('SNI sent to the upstream.'),
  insecureSkipVerify: nullableBool('Skip verification of the server certificate.'),
});

const policies = { loadBalancer, connectionPool, outlierDetection, tls: clientTLS };

const trafficPolicy = obj({
  ...policies,
  portLevelSettings: arr(obj({ port: portSelector('Port these settings apply to.'), ...policies }), 'Per-port overrides.'),
  tunnel: obj(
    {
      protocol: str('CONNECT or POST.'),
      targetHost: str('Host of the tunnel destination.'),
      targetPort: uint32('Port of the tunnel destination.'),
    },
    { required: ['targetHost', 'targetPort'] },
  ),
  proxyProtocol: obj({ version: enumOf(['V1', 'V2'], 'PROXY protocol version.') }),
});

const destinationRuleSpec = obj(
  {
    host: str('Service the rule applies to (short names resolve in the rule\'s namespace).'),
    trafficPolicy,
    subsets: arr(
      obj(
        {
          name: str('Subset name, used in route destinations.'),
          labels: stringMap('Labels selecting the endpoints of the subset.'),
          trafficPolicy,
        },
        { required: ['name'] },
      ),
      'Named groups of endpoints (versions).',
    ),
    exportTo: strings('Namespaces this rule is visible in ("." or "*"); default all.'),
    workloadSelector: obj({ matchLabels: stringMap('Labels of the client workloads the rule applies to.') }),
  },
  { required: ['host'] },
);

// --- Sidecar --------------------------------------------------------------------------------

const sidecarPort = obj(
  {
    number: portNumber('Port number.'),
    protocol: str('Protocol of the port (HTTP, HTTP2, GRPC, TCP...).'),
    name: str('Label of the port.'),
    targetPort: uint32('Port of the workload traffic goes to.'),
  },
  { required: ['number'] },
);
const captureMode = (description) => enumOf(['DEFAULT', 'IPTABLES', 'NONE'], description);

const sidecarSpec = obj({
  workloadSelector: obj({ labels: stringMap('Labels of the workloads (pods) in the Sidecar\'s namespace it applies to.') }),
  ingress: arr(
    obj(
      {
        port: sidecarPort,
        bind: str('Address the listener binds to.'),
        captureMode: captureMode('How traffic reaches the listener.'),
        defaultEndpoint: str('Where traffic goes: 127.0.0.1:<port>, 0.0.0.0:<port> or unix://<path>.'),
        tls: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description: 'TLS settings of the port (as a Gateway server\'s tls).' },
        connectionPool: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description: 'Connection pool settings for the workload.' },
      },
      { required: ['port'] },
    ),
    'Listeners for traffic to the workload.',
  ),
  egress: arr(
    obj(
      {
        port: sidecarPort,
        bind: str('Address the listener binds to.'),
        captureMode: captureMode('How traffic reaches the listener.'),
        hosts: strings('Services imported, as "<namespace>/<host>": namespace a name, "*", "." (this one) or "~" (none); host a DNS name, "*" or "*.suffix".'),
      },
      { required: ['hosts'] },
    ),
    'What the workload may reach: the services each listener imports.',
  ),
  outboundTrafficPolicy: obj({
    mode: enumOf(['REGISTRY_ONLY', 'ALLOW_ANY'], 'ALLOW_ANY: unknown destinations pass through; REGISTRY_ONLY: only imported services.'),
    egressProxy: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description: 'Where unknown destinations go under ALLOW_ANY.' },
  }),
  inboundConnectionPool: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description: 'Connection pool settings for all inbound ports.' },
});

// --- ServiceEntry and WorkloadEntry ----------------------------------------------------------

/** WorkloadEntry's spec, also the form of a ServiceEntry endpoint. */
const workloadEntrySpec = obj({
  address: str('Address of the workload: an IP address, a DNS name or unix://<path>.'),
  ports: map(portNumber(), 'Port of the workload for each named port of the ServiceEntry.'),
  labels: stringMap('Labels of the workload.'),
  network: str('Network the workload is in.'),
  locality: str('Locality of the workload: region/zone/subzone.'),
  weight: uint32('Load-balancing weight of the workload.'),
  serviceAccount: str('Service account of the workload (its SPIFFE identity for mTLS).'),
});

const serviceEntrySpec = obj(
  {
    hosts: strings('Hosts of the service: DNS names, or "*.suffix".'),
    addresses: strings('Virtual IP addresses or CIDR blocks of the service.'),
    ports: arr(
      obj(
        {
          number: portNumber('Port number.'),
          protocol: str('Protocol of the port (HTTP, HTTPS, HTTP2, GRPC, TLS, TCP...).'),
          name: str('Label of the port.'),
          targetPort: portNumber('Port of the endpoints traffic goes to.'),
        },
        { required: ['number'] },
      ),
      'Ports of the service.',
    ),
    location: enumOf(['MESH_EXTERNAL', 'MESH_INTERNAL'], 'Whether the service is outside the mesh (no mTLS to it by default) or part of it.'),
    resolution: enumOf(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'], 'How the endpoints are found: the original destination, the static endpoints, or DNS.'),
    endpoints: arr(workloadEntrySpec, 'Endpoints of the service.'),
    workloadSelector: obj({ labels: stringMap('Labels of the Pods and WorkloadEntries in the ServiceEntry\'s namespace that are its endpoints.') }),
    exportTo: strings('Namespaces the service is visible to ("." this one, "*" all).'),
    subjectAltNames: strings('Identities the servers of the service present.'),
  },
  { required: ['hosts'] },
);

// --- PeerAuthentication ---------------------------------------------------------------------

const mtls = (description) =>
  withDesc(
    obj({
      mode: enumOf(
        ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'],
        'STRICT: mTLS only; PERMISSIVE: mTLS or plaintext; DISABLE: plaintext only; UNSET: as the level above.',
      ),
    }),
    description,
  );

const peerAuthenticationSpec = {
  ...obj({
    selector: obj({ matchLabels: stringMap('Labels of the workloads (pods) the policy applies to, in its namespace.') }),
    mtls: mtls('The mode for every port of the selected workloads.'),
    portLevelMtls: {
      ...map(mtls(), 'Modes for single ports of the workload (the port the workload listens on), keyed by port number.'),
      minProperties: 1,
      'x-kubernetes-validations': [
        { rule: "self.all(key, key.matches('^[0-9]+$') && int(key) >= 1 && int(key) <= 65535)", message: 'keys must be port numbers from 1 to 65535' },
      ],
    },
  }),
  // Istio refuses port-level settings in mesh-wide and namespace-wide policies.
  'x-kubernetes-validations': [
    {
      rule: '!has(self.portLevelMtls) || (has(self.selector) && has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0)',
      message: 'portLevelMtls needs selector.matchLabels (it is only allowed in a workload-specific policy)',
    },
  ],
};

// --- AuthorizationPolicy --------------------------------------------------------------------

const source = obj({
  principals: strings('Peer identities (mTLS), "<trust domain>/ns/<namespace>/sa/<service account>"; "*" at one end is a wildcard.'),
  notPrincipals: strings('Peer identities that must not match.'),
  requestPrincipals: strings('Request identities (JWT), "<iss>/<sub>".'),
  notRequestPrincipals: strings('Request identities that must not match.'),
  namespaces: strings('Namespaces of the peer identity.'),
  notNamespaces: strings('Namespaces that must not match.'),
  serviceAccounts: strings('Service accounts of the peer, "<name>" or "<namespace>/<name>".'),
  notServiceAccounts: strings('Service accounts that must not match.'),
  ipBlocks: strings('Source IPs or CIDR ranges of the connection.'),
  notIpBlocks: strings('Source IPs that must not match.'),
  remoteIpBlocks: strings('Original client IPs (X-Forwarded-For, proxy protocol) or CIDR ranges.'),
  notRemoteIpBlocks: strings('Original client IPs that must not match.'),
});

const operation = obj({
  hosts: strings('Hosts (the :authority header); "*" at one end is a wildcard.'),
  notHosts: strings('Hosts that must not match.'),
  ports: strings('Destination ports, as strings.'),
  notPorts: strings('Destination ports that must not match.'),
  methods: strings('HTTP methods.'),
  notMethods: strings('HTTP methods that must not match.'),
  paths: strings('Paths: exact, prefix ("/api/*") or suffix ("*.json").'),
  notPaths: strings('Paths that must not match.'),
});

const authzRule = obj({
  from: arr(obj({ source }), 'Sources; any one may match. Unset: any source.'),
  to: arr(obj({ operation }), 'Operations; any one may match. Unset: any operation.'),
  when: arr(
    obj(
      {
        key: str('An Istio attribute: request.headers[<name>], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>], destination.ip, destination.port, connection.sni.'),
        values: strings('Values, any of which matches.'),
        notValues: strings('Values that must not match.'),
      },
      { required: ['key'] },
    ),
    'Extra conditions; all must match.',
  ),
});

const policyTargetRef = obj(
  {
    group: str('API group of the target (gateway.networking.k8s.io).'),
    kind: str('Kind of the target (Gateway).'),
    name: str('Name of the target, in the policy\'s namespace.'),
    namespace: str('Namespace of the target; the policy\'s own.'),
  },
  { required: ['kind', 'name'] },
);

const authorizationPolicySpec = {
  ...obj({
    selector: obj({ matchLabels: stringMap('Labels of the workloads the policy applies to; unset: every workload of the namespace (of the mesh, in the root namespace).') }),
    targetRef: policyTargetRef,
    targetRefs: arr(policyTargetRef, 'Gateways the policy applies to.'),
    rules: arr(authzRule, 'Rules; a request matching any one matches the policy. An ALLOW policy without rules allows nothing.'),
    action: enumOf(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], 'What a match means; ALLOW when unset.'),
    provider: obj({ name: str('The extension provider (mesh config extensionProviders) of a CUSTOM policy.') }),
  }),
  'x-kubernetes-validations': [
    { rule: '!(has(self.selector) && (has(self.targetRef) || has(self.targetRefs)))', message: 'only one of selector or targetRef(s) can be set' },
    { rule: '!(has(self.targetRef) && has(self.targetRefs))', message: 'only one of targetRef or targetRefs can be set' },
    { rule: "(has(self.action) && self.action == 'CUSTOM') == has(self.provider)", message: 'provider must be set with action CUSTOM, and only then' },
  ],
};

// --- RequestAuthentication ------------------------------------------------------------------

const jwtRule = obj(
  {
    issuer: str('The issuer a token must carry ("iss"), such as "https://accounts.example.com".'),
    audiences: strings('Audiences ("aud") a token may carry; unset: any.'),
    jwksUri: withDesc({ type: 'string', maxLength: 2048 }, 'An http(s) URL Envoy fetches the JSON Web Key Set from.'),
    jwks: str('The JSON Web Key Set itself, inline (instead of jwksUri).'),
    fromHeaders: arr(obj({ name: str('Header holding the token.'), prefix: str('Text before the token, such as "Bearer ".') }, { required: ['name'] }), 'Headers holding the token; unset: Authorization: Bearer <token>.'),
    fromParams: strings('Query parameters holding the token.'),
    fromCookies: strings('Cookies holding the token.'),
    outputPayloadToHeader: str('A header the verified payload is written to (base64url JSON) for the app.'),
    forwardOriginalToken: bool('Whether the token is passed on to the app; by default it is removed once verified.'),
    outputClaimToHeaders: arr(obj({ header: str('Header to write.'), claim: str('Claim whose value it carries.') }, { required: ['header', 'claim'] }), 'Claims copied into request headers.'),
    timeout: duration('How long a JWKS fetch may take (5s when unset).'),
  },
  {
    required: ['issuer'],
    'x-kubernetes-validations': [
      { rule: "!has(self.jwksUri) || (isURL(self.jwksUri) && url(self.jwksUri).getScheme() in ['http', 'https'])", message: 'jwksUri must be an http or https URL' },
      { rule: '!(has(self.jwks) && has(self.jwksUri))', message: 'only one of jwks or jwksUri can be set' },
    ],
  },
);

const requestAuthenticationSpec = {
  ...obj({
    selector: obj({ matchLabels: stringMap('Labels of the workloads the policy applies to; unset: every workload of the namespace (of the mesh, in the root namespace).') }),
    targetRef: policyTargetRef,
    targetRefs: arr(policyTargetRef, 'Gateways the policy applies to.'),
    jwtRules: { ...arr(jwtRule, 'Which tokens are accepted: a request with a token none of them verifies is refused (401); one without a token passes.'), maxItems: 4096 },
  }),
  'x-kubernetes-validations': [
    { rule: '!(has(self.selector) && (has(self.targetRef) || has(self.targetRefs)))', message: 'only one of selector or targetRef(s) can be set' },
    { rule: '!(has(self.targetRef) && has(self.targetRefs))', message: 'only one of targetRef or targetRefs can be set' },
  ],
};

// --- Telemetry ------------------------------------------------------------------------------

const workloadMode = (description) => enumOf(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'], description);
const providerRefs = (description) => arr(obj({ name: { ...str('Name of an extension provider of the mesh config (or "envoy", "prometheus").'), minLength: 1 } }, { required: ['name'] }), description);
const telemetryTargetRef = obj(
  {
    group: str('Group of the target (gateway.networking.k8s.io).'),
    kind: str('Kind of the target (Gateway).'),
    name: str('Name of the target.'),
    namespace: str('Namespace of the target (unset: the Telemetry\'s own).'),
  },
  { required: ['kind', 'name'] },
);
const customTag = obj(
  {
    literal: obj({ value: str('The tag\'s value.') }, { required: ['value'] }),
    environment: obj({ name: str('Environment variable of the proxy.'), defaultValue: str('Value when the variable is unset.') }, { required: ['name'] }),
    header: obj({ name: str('Request header.'), defaultValue: str('Value when the header is absent.') }, { required: ['name'] }),
  },
  { maxProperties: 1, minProperties: 1 },
);

const telemetrySpec = {
  ...obj({
    selector: obj({ matchLabels: stringMap('Labels of the workloads (pods) in the Telemetry\'s namespace it applies to.') }),
    targetRef: telemetryTargetRef,
    targetRefs: arr(telemetryTargetRef, 'The Gateways it applies to.'),
    accessLogging: arr(
      obj({
        match: obj({ mode: workloadMode('Client (outbound, gateways), server (inbound) or both.') }),
        providers: providerRefs('Access log providers; unset: the parent\'s, or the mesh config\'s defaultProviders.accessLogging.'),
        disabled: nullableBool('Turn the providers\' logs off.'),
        filter: obj({ expression: str('CEL expression: requests or connections to log, such as "response.code >= 400".') }),
      }),
      'Access logging: which providers log, and what.',
    ),
    tracing: arr(
      obj({
        match: obj({ mode: workloadMode('Client (outbound, gateways), server (inbound) or both.') }),
        providers: providerRefs('The tracing provider (one).'),
        customTags: map(customTag, 'Tags added to spans: a literal, an environment variable or a request header.'),
        disableSpanReporting: nullableBool('Send no spans (trace context still propagates).'),
        randomSamplingPercentage: { ...double('Percentage of requests sampled, 0 to 100.'), minimum: 0, maximum: 100, nullable: true },
        useRequestIdForTraceSampling: nullableBool('Sample by the x-request-id (Envoy\'s default).'),
        enableIstioTags: nullableBool('Istio\'s own span tags.'),
      }),
      'Tracing: provider, sampling and tags.',
    ),
    metrics: arr(
      obj({
        providers: providerRefs('Metrics providers (prometheus).'),
        overrides: arr(
          obj({
            match: obj({
              metric: enumOf(
                ['ALL_METRICS', 'REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE', 'TCP_OPENED_CONNECTIONS', 'TCP_CLOSED_CONNECTIONS', 'TCP_SENT_BYTES', 'TCP_RECEIVED_BYTES', 'GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES'],
                'One of Istio\'s standard metrics.',
              ),
              customMetric: str('A metric by name.'),
              mode: workloadMode('Client, server or both.'),
            }),
            disabled: nullableBool('Turn the metric off.'),
            tagOverrides: map(obj({ operation: enumOf(['UPSERT', 'REMOVE'], 'What to do with the tag.'), value: str('CEL expression of the value (UPSERT).') }), 'Tags to add, change or remove.'),
          }),
          'Changes to Istio\'s standard metrics (not applied by meshd: upstream Envoy has no Istio stats filter).',
        ),
        reportingInterval: duration('How often metrics are reported.'),
      }),
      'Metrics (validated; overrides not applied by meshd).',
    ),
  }),
  'x-kubernetes-validations': [
    { rule: '!(has(self.selector) && (has(self.targetRef) || has(self.targetRefs)))', message: 'only one of selector or targetRef(s) can be set' },
    { rule: '!(has(self.targetRef) && has(self.targetRefs))', message: 'only one of targetRef or targetRefs can be set' },
  ],
};

// --- CRDs -----------------------------------------------------------------------------------

const AGE = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since the object was created.' };

function crd({ api, kind, plural, singular, shortName, spec, description, columns }) {
  const schema = {
    type: 'object',
    description,
    properties: {
      spec: { description: `Spec of the ${kind}.`, ...spec },
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${api.group}`,
      labels: { 'app.kubernetes.io/name': 'meshd', 'app.kubernetes.io/component': 'crds' },
    },
    spec: {
      group: api.group,
      names: {
        kind,
        listKind: `${kind}List`,
        plural,
        singular,
        ...(shortName ? { shortNames: [shortName] } : {}),
        categories: api.categories,
      },
      scope: 'Namespaced',
      versions: api.versions.map((name) => ({
        name,
        served: true,
        storage: name === api.storage,
        ...(columns.length > 0 ? { additionalPrinterColumns: columns } : {}),
        subresources: { status: {} },
        schema: { openAPIV3Schema: JSON.parse(JSON.stringify(schema)) },
      })),
    },
  };
}

const crds = [
  crd({
    api: NETWORKING,
    kind: 'Gateway',
    plural: 'gateways',
    singular: 'gateway',
    shortName: 'gw',
    spec: gatewaySpec,
    description: 'A load balancer at the edge of the mesh: ports, protocols and hosts a gateway proxy accepts.',
    columns: [],
  }),
  crd({
    api: NETWORKING,
    kind: 'VirtualService',
    plural: 'virtualservices',
    singular: 'virtualservice',
    shortName: 'vs',
    spec: virtualServiceSpec,
    description: 'Routing rules for traffic addressed to a set of hosts.',
    columns: [
      { name: 'Gateways', type: 'string', jsonPath: '.spec.gateways', description: 'Gateways the routes are applied to.' },
      { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'Destination hosts the routes apply to.' },
      AGE,
    ],
  }),
  crd({
    api: NETWORKING,
    kind: 'DestinationRule',
    plural: 'destinationrules',
    singular: 'destinationrule',
    shortName: 'dr',
    spec: destinationRuleSpec,
    description: 'Policies applied to traffic for a service after routing: load balancing, connection pools, outlier detection, TLS, subsets.',
    columns: [{ name: 'Host', type: 'string', jsonPath: '.spec.host', description: 'Service the rule applies to.' }, AGE],
  }),
  crd({
    api: NETWORKING,
    kind: 'Sidecar',
    plural: 'sidecars',
    singular: 'sidecar',
    spec: sidecarSpec,
    description: 'What a sidecar proxy imports (egress hosts), how it listens for its workload (ingress), and its outbound traffic policy.',
    columns: [AGE],
  }),
  crd({
    api: NETWORKING,
    kind: 'ServiceEntry',
    plural: 'serviceentries',
    singular: 'serviceentry',
    shortName: 'se',
    spec: serviceEntrySpec,
    description: 'Hosts added to the mesh\'s service registry: ports, location, how endpoints are resolved, and the endpoints.',
    columns: [
      { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts', description: 'The hosts of the service.' },
      { name: 'Location', type: 'string', jsonPath: '.spec.location', description: 'Inside or outside the mesh.' },
      { name: 'Resolution', type: 'string', jsonPath: '.spec.resolution', description: 'How endpoints are found.' },
      AGE,
    ],
  }),
  crd({
    api: NETWORKING,
    kind: 'WorkloadEntry',
    plural: 'workloadentries',
    singular: 'workloadentry',
    shortName: 'we',
    spec: workloadEntrySpec,
    description: 'A workload outside Kubernetes (a VM, a bare-metal host): its address, ports, labels and identity.',
    columns: [AGE, { name: 'Address', type: 'string', jsonPath: '.spec.address', description: 'Address of the workload.' }],
  }),
  crd({
    api: SECURITY,
    kind: 'PeerAuthentication',
    plural: 'peerauthentications',
    singular: 'peerauthentication',
    shortName: 'pa',
    spec: peerAuthenticationSpec,
    description: 'Whether workloads accept mutual TLS only, mutual TLS or plaintext, or plaintext only: mesh-wide, per namespace, per workload or per port.',
    columns: [{ name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'The mTLS mode of the selected workloads.' }, AGE],
  }),
  crd({
    api: SECURITY,
    kind: 'AuthorizationPolicy',
    plural: 'authorizationpolicies',
    singular: 'authorizationpolicy',
    shortName: 'ap',
    spec: authorizationPolicySpec,
    description: 'Who may call the selected workloads, and how: ALLOW, DENY, AUDIT or CUSTOM rules on sources, operations and conditions.',
    columns: [{ name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'The action of the policy.' }, AGE],
  }),
  crd({
    api: SECURITY,
    kind: 'RequestAuthentication',
    plural: 'requestauthentications',
    singular: 'requestauthentication',
    shortName: 'ra',
    spec: requestAuthenticationSpec,
    description: 'Which JSON Web Tokens the selected workloads accept: issuers, audiences, keys, where the token is found and what the app is told.',
    columns: [AGE],
  }),
  crd({
    api: TELEMETRY,
    kind: 'Telemetry',
    plural: 'telemetries',
    singular: 'telemetry',
    shortName: 'telemetry',
    spec: telemetrySpec,
    description: 'Access logging, tracing and metrics settings: mesh-wide (root namespace), per namespace, or per workload (selector) or Gateway (targetRef).',
    columns: [AGE],
  }),
];

const header = [
  '# Generated by manifests/tools/gen-crds.mjs; edit that file and run it, not this one.',
  '# networking.istio.io Gateway, VirtualService, DestinationRule, Sidecar, ServiceEntry and WorkloadEntry, served at v1 (storage),',
  '# v1beta1 and v1alpha3 with one structural schema; security.istio.io PeerAuthentication, AuthorizationPolicy',
  '# and RequestAuthentication, served at v1 (storage) and v1beta1; telemetry.istio.io Telemetry, served at v1 (storage) and v1alpha1.',
  '',
].join('\n');
const text =
  header +
  crds.map((c) => stringify(c, { aliasDuplicateObjects: false, lineWidth: 0 })).join('---\n');

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(OUT, 'utf8');
  } catch {
    // missing: out of date
  }
  if (current !== text) {
    console.error(`${OUT} is out of date: run node manifests/tools/gen-crds.mjs`);
    process.exit(1);
  }
  console.log(`${OUT} is up to date`);
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT}`);
}
