// `meshd serve`: runs the control plane until SIGTERM or SIGINT.
import { Command, Option } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { startControlPlane, type ConfigSourceOption } from '../control-plane/index.js';
import { createLogger } from '../util/log.js';
import { parseDurationMs } from '../util/duration.js';
import { CA_KEY_TYPES, type CaKeyType } from '../ca/keys.js';

function duration(flag: string) {
  return (v: string): number => {
    const ms = parseDurationMs(v);
    if (ms === undefined) throw new Error(`${flag}: "${v}" is not a duration (e.g. 100ms, 1s)`);
    return ms;
  };
}

function count(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: "${v}" is not a whole number >= 0`);
    return n;
  };
}

/** A certificate lifetime in seconds: a Go duration ("24h", "90m") or days ("90d"). */
function certTtl(flag: string) {
  return (v: string): number => {
    const days = /^\s*(\d+(?:\.\d+)?)d\s*$/.exec(v);
    const ms = days ? Number(days[1]) * 86_400_000 : parseDurationMs(v);
    if (ms === undefined || !(ms >= 1000)) throw new Error(`${flag}: "${v}" is not a lifetime of at least 1s (e.g. 24h, 90d)`);
    return Math.round(ms / 1000);
  };
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The namespace meshd runs in: the pod's, else istio-system. */
function defaultNamespace(): string {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'istio-system';
  } catch {
    return 'istio-system';
  }
}

interface ServeFlags {
  configDir: string;
  kubeconfig?: string;
  grpcAddr: string;
  secureGrpcAddr: string;
  webhookAddr: string;
  injectorHub?: string;
  injectorTag?: string;
  monitoringAddr: string;
  domain: string;
  debounceAfter: number;
  debounceMax: number;
  debounceEndpoints: number;
  pushConcurrency: number;
  xdsSendTimeout: number;
  xdsStallGrace: number;
  pushSlotTimeout: number;
  streamAdmissionRate: number;
  statusWriteRate: number;
  streamAdmissionQueue: number;
  maxConnectionAge: number;
  drainDuration: number;
  maxNodeMetadata: number;
  logLevel: string;
  logFormat: 'json' | 'text';
  namespace?: string;
  trustDomain: string;
  caKeyType: CaKeyType;
  caCertDir?: string;
  workloadCertTtl: number;
  maxWorkloadCertTtl: number;
  tokenAudience: string;
  workloadCertGraceRatio: number;
  leaderLeaseDuration: number;
  meshConfig?: string;
  validationFailClose: 'on' | 'off';
  vhds: 'on' | 'off';
}

export function serveCommand(): Command {
  const cmd = new Command('serve');
  return cmd
    .description('Run the control plane: watch config, translate it and serve it to proxies over ADS')
    .addOption(new Option('--config-dir <dir>', 'directory of Kubernetes YAML (Services, EndpointSlices...) to serve; watched for changes').env('MESHD_CONFIG_DIR').default('examples'))
    .addOption(new Option('--kubeconfig <file>', 'watch a Kubernetes cluster with this kubeconfig; "in-cluster" uses the pod\'s service account (the default when running in a pod and --config-dir is not given)').env('KUBECONFIG'))
    .addOption(new Option('--grpc-addr <addr>', 'plaintext xDS (and CA) gRPC address').env('MESHD_GRPC_ADDR').default(':15010'))
    .addOption(new Option('--secure-grpc-addr <addr>', 'TLS xDS and CA gRPC address, with a certificate from meshd\'s CA ("off" to not serve it)').env('MESHD_SECURE_GRPC_ADDR').default(':15012'))
    .addOption(new Option('--webhook-addr <addr>', 'HTTPS admission webhooks (sidecar injection at /inject), with a certificate from meshd\'s CA ("off" to not serve them)').env('MESHD_WEBHOOK_ADDR').default(':15017'))
    .addOption(new Option('--vhds <on|off>', 'sidecars on delta ADS take their service virtual hosts over VHDS, so an edit sends only the virtual hosts it changed ("off": whole route configurations, as SotW proxies get)').env('MESHD_VHDS').choices(['on', 'off']).default('on'))
    .addOption(new Option('--validation-fail-close <on|off>', 'once the apiserver is seen to call /validate and it refuses invalid config (a dry run), the leader switches the validating webhook to failurePolicy Fail, as istiod does ("off": failurePolicy is left as applied)').env('MESHD_VALIDATION_FAIL_CLOSE').choices(['on', 'off']).default('on'))
    .addOption(new Option('--injector-hub <hub>', 'image registry of injected proxies (proxyv2), unless the istio-sidecar-injector ConfigMap says otherwise').env('MESHD_INJECTOR_HUB'))
    .addOption(new Option('--injector-tag <tag>', 'image tag of injected proxies').env('MESHD_INJECTOR_TAG'))
    .addOption(new Option('--monitoring-addr <addr>', 'address of /metrics, /ready and /debug').env('MESHD_MONITORING_ADDR').default(':15014'))
    .addOption(new Option('--domain <domain>', 'cluster DNS domain').env('MESHD_DOMAIN').default('cluster.local'))
    .addOption(new Option('--debounce-after <duration>', 'quiet time after a change before pushing').env('MESHD_DEBOUNCE_AFTER').default(100).argParser(duration('--debounce-after')))
    .addOption(new Option('--debounce-max <duration>', 'longest a change waits while changes keep coming').env('MESHD_DEBOUNCE_MAX').default(1000).argParser(duration('--debounce-max')))
    .addOption(new Option('--debounce-endpoints <duration>', 'quiet time when only endpoints changed (their pushes are incremental)').env('MESHD_DEBOUNCE_ENDPOINTS').default(30).argParser(duration('--debounce-endpoints')))
    .addOption(new Option('--push-concurrency <n>', 'proxies pushed to at once (bounds the bytes in flight)').env('MESHD_PUSH_CONCURRENCY').default(20).argParser((v) => Number(v)))
    .addOption(new Option('--xds-send-timeout <duration>', 'a stream whose write does not drain in this long is detached from pushes (a stuck or hostile client never holds up others)').env('MESHD_XDS_SEND_TIMEOUT').default(10_000, '10s').argParser(duration('--xds-send-timeout')))
    .addOption(new Option('--xds-stall-grace <duration>', 'a detached stream that still has not drained is closed after this').env('MESHD_XDS_STALL_GRACE').default(30_000, '30s').argParser(duration('--xds-stall-grace')))
    .addOption(new Option('--push-slot-timeout <duration>', 'longest one proxy\'s push holds one of the --push-concurrency slots; a slower write finishes outside them').env('MESHD_PUSH_SLOT_TIMEOUT').default(1000, '1s').argParser(duration('--push-slot-timeout')))
    .addOption(new Option('--stream-admission-rate <n>', 'new xDS streams admitted per second (others wait in a queue); 0 for no limit').env('MESHD_STREAM_ADMISSION_RATE').default(500).argParser(count('--stream-admission-rate')))
    .addOption(new Option('--stream-admission-queue <n>', 'new xDS streams that may wait for admission; more are refused with UNAVAILABLE (proxies retry)').env('MESHD_STREAM_ADMISSION_QUEUE').default(10_000).argParser(count('--stream-admission-queue')))
    .addOption(new Option('--max-connection-age <duration>', 'connections are closed gracefully at this age (with jitter), so proxies spread over replicas').env('MESHD_MAX_CONNECTION_AGE').default(30 * 60_000, '30m').argParser(duration('--max-connection-age')))
    .addOption(new Option('--drain-duration <duration>', 'on SIGTERM, open xDS streams are closed spread over this long, so proxies move to other replicas gradually').env('MESHD_DRAIN_DURATION').default(10_000, '10s').argParser(duration('--drain-duration')))
    .addOption(new Option('--max-node-metadata <bytes>', 'largest node metadata (as JSON) a proxy may send; larger is refused with INVALID_ARGUMENT').env('MESHD_MAX_NODE_METADATA').default(65_536).argParser(count('--max-node-metadata')))
    .addOption(new Option('--namespace <ns>', 'namespace meshd runs in (its CA Secrets; its serving certificate names istiod.<ns>.svc); default: the pod\'s, else istio-system').env('POD_NAMESPACE'))
    .addOption(new Option('--trust-domain <domain>', "SPIFFE trust domain of workload identities (spiffe://<trust-domain>/ns/<ns>/sa/<sa>); given, it wins over the mesh config's trustDomain").env('MESHD_TRUST_DOMAIN').default('cluster.local'))
    .addOption(new Option('--mesh-config <file>', "Istio's mesh config (MeshConfig YAML), watched; without it, in a cluster, ConfigMap istio (key mesh) in meshd's namespace").env('MESHD_MESH_CONFIG'))
    .addOption(new Option('--ca-key-type <type>', 'key type of a self-signed root generated by meshd').env('MESHD_CA_KEY_TYPE').choices([...CA_KEY_TYPES]).default('ec-p256'))
    .addOption(new Option('--ca-cert-dir <dir>', 'plugged-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem (Istio\'s cacerts layout)').env('MESHD_CA_CERT_DIR'))
    .addOption(new Option('--workload-cert-ttl <duration>', 'lifetime of workload certificates when the request names none').env('MESHD_WORKLOAD_CERT_TTL').default(86_400, '24h').argParser(certTtl('--workload-cert-ttl')))
    .addOption(
      new Option('--workload-cert-grace-ratio <fraction>', "proxies' certificates (SDS) are renewed and pushed when this fraction of their lifetime remains, as Istio's SECRET_GRACE_PERIOD_RATIO")
        .env('MESHD_WORKLOAD_CERT_GRACE_RATIO')
        .default(0.5)
        .argParser((v) => {
          const n = Number(v);
          if (!(n > 0 && n < 1)) throw new Error(`--workload-cert-grace-ratio: "${v}" is not a fraction between 0 and 1`);
          return n;
        }),
    )
    .addOption(new Option('--max-workload-cert-ttl <duration>', 'longest lifetime granted; longer requests are cut to it').env('MESHD_MAX_WORKLOAD_CERT_TTL').default(90 * 86_400, '90d').argParser(certTtl('--max-workload-cert-ttl')))
    .addOption(new Option('--token-audience <aud>', 'audience callers\' service-account tokens must carry for the CA').env('MESHD_TOKEN_AUDIENCE').default('istio-ca'))
    // Leader election (a cluster only): renew deadline 2/3 and retry period 2/15 of it. For tests; hidden.
    .addOption(new Option('--status-write-rate <n>', 'status writes per second to Istio objects in the cluster (the leader writes them); 0 writes no status').env('MESHD_STATUS_WRITE_RATE').default(20).argParser(count('--status-write-rate')))
    .addOption(new Option('--leader-lease-duration <duration>', 'how long the leader Lease outlives its holder').env('MESHD_LEADER_LEASE_DURATION').default(15_000, '15s').argParser(duration('--leader-lease-duration')).hideHelp())
    .addOption(new Option('--log-level <level>', 'trace, debug, info, warn or error').env('MESHD_LOG_LEVEL').default('info'))
    .addOption(new Option('--log-format <format>', 'json or text').env('MESHD_LOG_FORMAT').choices(['json', 'text']).default('json'))
    .action(async (o: ServeFlags) => {
      const log = createLogger({ level: o.logLevel, format: o.logFormat });
      const inPod = process.env.KUBERNETES_SERVICE_HOST !== undefined && existsSync(SERVICE_ACCOUNT_TOKEN);
      const dirGiven = cmd.getOptionValueSource('configDir') !== 'default';
      let source: ConfigSourceOption;
      // A KUBECONFIG from the environment with an explicit --config-dir: config from files, tokens reviewed by that cluster.
      let authKubeconfig: string | undefined;
      if (o.kubeconfig && !(dirGiven && cmd.getOptionValueSource('kubeconfig') === 'env')) source = { type: 'kube', kubeconfig: o.kubeconfig };
      else if (inPod && !dirGiven) source = { type: 'kube', kubeconfig: 'in-cluster' };
      else {
        if (!existsSync(o.configDir) || !statSync(o.configDir).isDirectory()) throw new Error(`--config-dir ${o.configDir}: not a directory`);
        source = { type: 'file', dir: o.configDir };
        authKubeconfig = o.kubeconfig;
      }
      if (o.maxWorkloadCertTtl < o.workloadCertTtl) throw new Error(`--max-workload-cert-ttl (${o.maxWorkloadCertTtl}s) is shorter than --workload-cert-ttl (${o.workloadCertTtl}s)`);
      const cp = await startControlPlane({
        source,
        grpcAddr: o.grpcAddr,
        monitoringAddr: o.monitoringAddr,
        domain: o.domain,
        debounceMs: o.debounceAfter,
        debounceMaxMs: Math.max(o.debounceMax, o.debounceAfter),
        debounceEndpointsMs: o.debounceEndpoints,
        pushConcurrency: o.pushConcurrency,
        xds: {
          sendTimeoutMs: o.xdsSendTimeout,
          stallGraceMs: o.xdsStallGrace,
          pushSlotTimeoutMs: o.pushSlotTimeout,
          admissionRate: o.streamAdmissionRate,
          admissionQueue: o.streamAdmissionQueue,
          maxConnectionAgeMs: o.maxConnectionAge,
          drainMs: o.drainDuration,
          maxMetadataBytes: o.maxNodeMetadata,
          vhds: o.vhds === 'on',
        },
        log,
        secureGrpcAddr: o.secureGrpcAddr === 'off' ? undefined : o.secureGrpcAddr,
        webhookAddr: o.webhookAddr === 'off' ? undefined : o.webhookAddr,
        validationFailClose: o.validationFailClose === 'on',
        injector: { ...(o.injectorHub ? { hub: o.injectorHub } : {}), ...(o.injectorTag ? { tag: o.injectorTag } : {}) },
        ...(o.meshConfig !== undefined ? { meshConfigFile: o.meshConfig } : {}),
        ca: {
          // A --trust-domain given wins; else the mesh config's trustDomain (cluster.local by default).
          ...(cmd.getOptionValueSource('trustDomain') === 'default' ? {} : { trustDomain: o.trustDomain }),
          keyType: o.caKeyType,
          certDir: o.caCertDir,
          workloadCertTtlSeconds: o.workloadCertTtl,
          maxWorkloadCertTtlSeconds: o.maxWorkloadCertTtl,
          namespace: o.namespace ?? defaultNamespace(),
        },
        tokenAudience: o.tokenAudience,
        authKubeconfig,
        certGraceRatio: o.workloadCertGraceRatio,
        leaderElection: { leaseDurationMs: o.leaderLeaseDuration },
        statusWriteRate: o.statusWriteRate,
      });
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        // SIGTERM (Kubernetes stopping the pod): drain streams gradually; SIGINT: stop now.
        (signal === 'SIGTERM' ? cp.drainAndStop() : cp.stop()).then(
          () => {
            log.flush();
            process.exit(0);
          },
          (err: unknown) => {
            log.error({ err: String(err) }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
}
