// `meshd kube-inject`: injects the sidecar into Kubernetes YAML offline, as
// `istioctl kube-inject` does, with the same code (and so the same result) as meshd's webhook.
import { Command, Option } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { kubeInjectYaml } from '../inject/kube-inject.js';
import { defaultInjectorSettings, parseInjectorSettings, SettingsError, type InjectorSettings, type ProxyMode } from '../inject/settings.js';

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new Error(`${file === '-' ? 'stdin' : file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The injector settings of a file holding the `istio-sidecar-injector` ConfigMap (the first ConfigMap in it). */
function settingsFromFile(file: string): InjectorSettings {
  const docs = parseAllDocuments(readInput(file));
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) throw new Error(`--injector-config ${file}: document ${i}: ${doc.errors[0]!.message.split('\n')[0]}`);
    const v = doc.toJS({ maxAliasCount: 100 }) as { kind?: unknown; data?: Record<string, unknown> } | null;
    if (v && v.kind === 'ConfigMap') {
      try {
        return parseInjectorSettings(v);
      } catch (err) {
        if (err instanceof SettingsError) throw new Error(`--injector-config ${file}: ${err.message}`, { cause: err });
        throw err;
      }
    }
  }
  throw new Error(`--injector-config ${file}: no ConfigMap in it (expected the istio-sidecar-injector ConfigMap)`);
}

interface KubeInjectFlags {
  filename: string;
  output?: string;
  injectorConfig?: string;
  hub?: string;
  tag?: string;
  revision?: string;
  mode?: ProxyMode;
  nativeSidecars?: boolean;
  envoyImage?: string;
  meshdImage?: string;
}

export function kubeInjectCommand(): Command {
  return new Command('kube-inject')
    .description("Inject the sidecar into Kubernetes YAML (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs), as istioctl kube-inject and meshd's webhook do")
    .requiredOption('-f, --filename <file>', "the YAML to inject ('-' for stdin)")
    .option('-o, --output <file>', 'write the result here instead of stdout')
    .option('--injector-config <file>', 'a file with the istio-sidecar-injector ConfigMap (data.values, data.config, data.meshd) to take the settings from')
    .option('--hub <hub>', "registry of Istio's proxy image (<hub>/proxyv2:<tag>)")
    .option('--tag <tag>', "tag of Istio's proxy image")
    .option('--revision <rev>', 'control plane revision')
    .addOption(new Option('--mode <mode>', "agent: Istio's pilot-agent and Envoy; agentless: a stock Envoy bootstrapped by `meshd bootstrap`").choices(['agent', 'agentless']))
    .option('--native-sidecars', 'put the proxy in an init container with restartPolicy Always (Kubernetes native sidecars)')
    .option('--envoy-image <image>', "the agentless proxy's Envoy image")
    .option('--meshd-image <image>', "meshd's image, which writes the agentless proxy's bootstrap")
    .action((o: KubeInjectFlags) => {
      const settings = o.injectorConfig ? settingsFromFile(o.injectorConfig) : defaultInjectorSettings();
      if (o.hub) settings.hub = o.hub;
      if (o.tag) settings.tag = o.tag;
      if (o.revision) settings.revision = o.revision;
      if (o.mode) settings.mode = o.mode;
      if (o.nativeSidecars) settings.nativeSidecars = true;
      if (o.envoyImage) settings.envoyImage = o.envoyImage;
      if (o.meshdImage) settings.meshdImage = o.meshdImage;
      const r = kubeInjectYaml(readInput(o.filename), settings);
      for (const n of r.notes) if (!n.injected) process.stderr.write(`kube-inject: skipped ${n.object}: ${n.reason}\n`);
      if (o.output) writeFileSync(o.output, r.yaml);
      else process.stdout.write(r.yaml);
    });
}
