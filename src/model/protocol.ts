// Chooses a port's protocol the way Istio does: `appProtocol` first, then the port
// name's prefix (`http`, `http-web`, `grpc-api`, ...). A port that declares neither is AUTO:
// its listeners detect HTTP/1.1 and HTTP/2 from the client's first bytes (protocol sniffing)
// and carry anything else as TCP.

export type Protocol = 'HTTP' | 'HTTP2' | 'GRPC' | 'GRPC-WEB' | 'HTTPS' | 'TLS' | 'TCP' | 'UDP' | 'MONGO' | 'MYSQL' | 'REDIS' | 'AUTO';

const BY_NAME: Record<string, Protocol> = {
  http: 'HTTP',
  http2: 'HTTP2',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-WEB',
  https: 'HTTPS',
  tls: 'TLS',
  tcp: 'TCP',
  udp: 'UDP',
  mongo: 'MONGO',
  mysql: 'MYSQL',
  redis: 'REDIS',
  // Kubernetes' standard appProtocol values.
  'kubernetes.io/h2c': 'HTTP2',
  'kubernetes.io/ws': 'HTTP',
  'kubernetes.io/wss': 'HTTPS',
};

function lookup(name: string): Protocol | undefined {
  return BY_NAME[name.toLowerCase()];
}

/** The protocol of a service port, from its appProtocol, name and L4 protocol. */
export function portProtocol(port: { name?: string; appProtocol?: string; protocol?: string }): Protocol {
  if (port.protocol === 'UDP') return 'UDP';
  if (port.appProtocol) {
    const p = lookup(port.appProtocol);
    if (p) return p;
  }
  const name = port.name ?? '';
  const exact = lookup(name);
  if (exact) return exact;
  const dash = name.indexOf('-');
  if (dash > 0) {
    // "grpc-web-foo" is grpc-web; "http-foo" is http.
    const twoPart = lookup(name.split('-').slice(0, 2).join('-'));
    if (twoPart === 'GRPC-WEB') return twoPart;
    const prefix = lookup(name.slice(0, dash));
    if (prefix) return prefix;
  }
  return 'AUTO';
}

/** Ports whose traffic may be HTTP: declared HTTP protocols, and undeclared ones (sniffed). */
export function mayCarryHttp(p: Protocol): boolean {
  return isHttpProtocol(p) || p === 'AUTO';
}

export function isHttpProtocol(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

/** Protocols whose upstream connections must speak HTTP/2. */
export function isHttp2Protocol(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC';
}
