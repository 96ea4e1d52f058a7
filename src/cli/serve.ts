// `meshd serve`: runs the control plane until SIGTERM or SIGINT.
import { Command, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { startControlPlane, type ConfigSourceOption } from '../control-plane.js';
import { createLogger } from '../util/log.js';
import { parseDurationMs } from '../util/duration.js';

function duration(flag: string) {
  return (v: string): number => {
    const ms = parseDurationMs(v);
    if (ms === undefined) throw new Error(`${flag}: "${v}" is not a duration (e.g. 100ms, 1s)`);
    return ms;
  };
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function serveCommand(): Command {
  const cmd = new Command('serve');
  return cmd
    .description('Run the control plane: watch config, translate it and serve it to proxies over ADS')
    .addOption(new Option('--config-dir <dir>', 'directory of Kubernetes YAML (Services, EndpointSlices...) to serve; watched for changes').env('MESHD_CONFIG_DIR').default('examples'))
    .addOption(new Option('--kubeconfig <file>', 'watch a Kubernetes cluster with this kubeconfig; "in-cluster" uses the pod\'s service account (the default when running in a pod and --config-dir is not given)').env('KUBECONFIG'))
    .addOption(new Option('--grpc-addr <addr>', 'plaintext xDS (and CA) gRPC address').env('MESHD_GRPC_ADDR').default(':15010'))
    .addOption(new Option('--monitoring-addr <addr>', 'address of /metrics, /ready and /debug').env('MESHD_MONITORING_ADDR').default(':15014'))
    .addOption(new Option('--domain <domain>', 'cluster DNS domain').env('MESHD_DOMAIN').default('cluster.local'))
    .addOption(new Option('--debounce-after <duration>', 'quiet time after a change before pushing').env('MESHD_DEBOUNCE_AFTER').default(100).argParser(duration('--debounce-after')))
    .addOption(new Option('--debounce-max <duration>', 'longest a change waits while changes keep coming').env('MESHD_DEBOUNCE_MAX').default(1000).argParser(duration('--debounce-max')))
    .addOption(new Option('--debounce-endpoints <duration>', 'quiet time when only endpoints changed (their pushes are incremental)').env('MESHD_DEBOUNCE_ENDPOINTS').default(30).argParser(duration('--debounce-endpoints')))
    .addOption(new Option('--push-concurrency <n>', 'proxies pushed to at once (bounds the bytes in flight)').env('MESHD_PUSH_CONCURRENCY').default(20).argParser((v) => Number(v)))
    .addOption(new Option('--log-level <level>', 'trace, debug, info, warn or error').env('MESHD_LOG_LEVEL').default('info'))
    .addOption(new Option('--log-format <format>', 'json or text').env('MESHD_LOG_FORMAT').choices(['json', 'text']).default('json'))
    .action(async (o: { configDir: string; kubeconfig?: string; grpcAddr: string; monitoringAddr: string; domain: string; debounceAfter: number; debounceMax: number; debounceEndpoints: number; pushConcurrency: number; logLevel: string; logFormat: 'json' | 'text' }) => {
      const log = createLogger({ level: o.logLevel, format: o.logFormat });
      const inPod = process.env.KUBERNETES_SERVICE_HOST !== undefined && existsSync(SERVICE_ACCOUNT_TOKEN);
      const dirGiven = cmd.getOptionValueSource('configDir') !== 'default';
      let source: ConfigSourceOption;
      if (o.kubeconfig && !(dirGiven && cmd.getOptionValueSource('kubeconfig') === 'env')) source = { type: 'kube', kubeconfig: o.kubeconfig };
      else if (inPod && !dirGiven) source = { type: 'kube', kubeconfig: 'in-cluster' };
      else {
        if (!existsSync(o.configDir) || !statSync(o.configDir).isDirectory()) throw new Error(`--config-dir ${o.configDir}: not a directory`);
        source = { type: 'file', dir: o.configDir };
      }
      const cp = await startControlPlane({
        source,
        grpcAddr: o.grpcAddr,
        monitoringAddr: o.monitoringAddr,
        domain: o.domain,
        debounceMs: o.debounceAfter,
        debounceMaxMs: Math.max(o.debounceMax, o.debounceAfter),
        debounceEndpointsMs: o.debounceEndpoints,
        pushConcurrency: o.pushConcurrency,
        log,
      });
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'shutting down');
        cp.stop().then(
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
