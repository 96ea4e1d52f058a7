// `meshd bootstrap`: prints the Envoy bootstrap that connects a plain Envoy to meshd.
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { envoyBootstrap, grpcBootstrap, type BootstrapOptions } from '../inject/bootstrap.js';
import { parseMeshConfig } from '../model/mesh-config.js';

/** What a bootstrap takes from the mesh config's defaultConfig (Istio's ProxyConfig). */
interface ProxyDefaults {
  discoveryAddress?: string;
  proxyAdminPort?: number;
  /** proxyMetadata's ISTIO_META_* entries, as node metadata without the prefix (as Istio's agent sends them). */
  metadata: Record<string, string>;
}

function proxyDefaults(file: string | undefined): ProxyDefaults {
  if (file === undefined) return { metadata: {} };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--mesh-config ${file}: ${(err as Error).message}`, { cause: err });
  }
  const pc = parseMeshConfig(text, `file ${file}`).config.defaultConfig;
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries((pc.proxyMetadata as Record<string, string> | undefined) ?? {})) if (k.startsWith('ISTIO_META_') && k.length > 11) metadata[k.slice(11)] = v;
  return {
    ...(typeof pc.discoveryAddress === 'string' ? { discoveryAddress: pc.discoveryAddress } : {}),
    ...(typeof pc.proxyAdminPort === 'number' ? { proxyAdminPort: pc.proxyAdminPort } : {}),
    metadata,
  };
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--labels: "${part}" is not key=value`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

function port(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag}: "${v}" is not a port`);
    return n;
  };
}

function readToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`--token-file ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (!token || /\s/.test(token)) throw new Error(`--token-file ${file}: expected one service account token (a JWT), found ${token ? 'whitespace inside' : 'an empty file'}`);
  return token;
}

export function bootstrapCommand(): Command {
  const cmd = new Command('bootstrap');
  return cmd
    .description('Print an Envoy bootstrap for a sidecar or gateway that gets its config from meshd')
    .addOption(new Option('--type <type>', 'proxy role').choices(['sidecar', 'router']).default('sidecar'))
    .option('--ip <ip>', 'the workload (pod) IP', '127.0.0.1')
    .option('--pod <name>', 'pod name', 'envoy')
    .option('--namespace <ns>', 'namespace', 'default')
    .option('--service-account <sa>', 'service account', 'default')
    .option('--labels <k=v,...>', 'workload labels', parseLabels, {} as Record<string, string>)
    .option('--domain <domain>', 'cluster DNS domain', 'cluster.local')
    .addOption(new Option('--xds-address <host:port>', "meshd's xDS address").env('MESHD_XDS_ADDRESS').default('127.0.0.1:15010'))
    .option('--delta', 'use delta ADS (as Istio 1.22+ sidecars do)', false)
    .option('--admin-port <port>', 'Envoy admin port', port('--admin-port'), 15000)
    .option('--admin-address <ip>', 'Envoy admin bind address', '127.0.0.1')
    .option('--readiness-port <port>', 'static readiness listener port (0 for none)', port('--readiness-port'), 15021)
    .option('--prometheus-port <port>', "static listener serving Envoy's stats at /stats/prometheus (0 for none; needs a fixed --admin-port)", port('--prometheus-port'), 15090)
    .addOption(new Option('--interception <mode>', 'REDIRECT when iptables captures traffic; NONE to bind outbound listeners on 127.0.0.1').choices(['REDIRECT', 'NONE']).default('REDIRECT'))
    .option('--cluster-id <id>', 'cluster id', 'Kubernetes')
    .addOption(new Option('--format <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .option('--proxyless', 'print a gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP) for a proxyless gRPC client instead', false)
    .option('--token-file <file>', "a service account token (audience istio-ca) sent to meshd as 'authorization: Bearer': the proxy gets its workload certificate over SDS and mTLS")
    .option('--xds-root-cert <file>', "meshd's root certificate (istio-ca-root-cert): connect over TLS (meshd's port 15012) and verify meshd")
    .option('--xds-server-name <name>', "the name meshd's certificate must carry, with --xds-root-cert", 'istiod.istio-system.svc')
    .option('--mesh-config <file>', "Istio's mesh config: its defaultConfig gives discoveryAddress (--xds-address), proxyAdminPort (--admin-port) and proxyMetadata ISTIO_META_* (node metadata); flags given win")
    .action(
      (o: {
        type: 'sidecar' | 'router';
        ip: string;
        pod: string;
        namespace: string;
        serviceAccount: string;
        labels: Record<string, string>;
        domain: string;
        xdsAddress: string;
        delta: boolean;
        adminPort: number;
        adminAddress: string;
        readinessPort: number;
        prometheusPort: number;
        interception: 'REDIRECT' | 'NONE';
        clusterId: string;
        format: 'yaml' | 'json';
        proxyless: boolean;
        tokenFile?: string;
        xdsRootCert?: string;
        xdsServerName: string;
        meshConfig?: string;
      }) => {
        const defaults = proxyDefaults(o.meshConfig);
        const given = (flag: string): boolean => cmd.getOptionValueSource(flag) !== 'default' && cmd.getOptionValueSource(flag) !== undefined;
        const opts: BootstrapOptions = {
          type: o.type,
          ip: o.ip,
          podName: o.pod,
          namespace: o.namespace,
          domain: o.domain,
          serviceAccount: o.serviceAccount,
          labels: o.labels,
          xdsAddress: !given('xdsAddress') && defaults.discoveryAddress ? defaults.discoveryAddress : o.xdsAddress,
          delta: o.delta,
          adminPort: !given('adminPort') && defaults.proxyAdminPort !== undefined ? defaults.proxyAdminPort : o.adminPort,
          adminAddress: o.adminAddress,
          readinessPort: o.readinessPort,
          prometheusPort: o.prometheusPort,
          interceptionMode: o.interception,
          clusterId: o.clusterId,
          ...(Object.keys(defaults.metadata).length ? { extraMetadata: defaults.metadata } : {}),
          ...(o.tokenFile ? { token: readToken(o.tokenFile) } : {}),
          ...(o.xdsRootCert ? { xdsRootCertFile: resolve(o.xdsRootCert), xdsServerName: o.xdsServerName } : {}),
        };
        const doc = o.proxyless ? grpcBootstrap(opts) : envoyBootstrap(opts);
        process.stdout.write(o.format === 'json' || o.proxyless ? JSON.stringify(doc, null, 2) + '\n' : stringify(doc));
      },
    );
}
