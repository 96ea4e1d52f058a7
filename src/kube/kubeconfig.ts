// Finding the cluster a command-line tool talks to, as kubectl does: --kubeconfig, else the
// files in $KUBECONFIG (merged, first wins), else ~/.kube/config, else the in-cluster service
// account. When nothing is found the error says every place that was looked at.
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import type { KubeConnection } from './client.js';

export interface KubeconfigChoice {
  /** A kubeconfig file (a flag); wins over $KUBECONFIG. */
  kubeconfig?: string;
  /** A context of that kubeconfig; default its current-context. */
  context?: string;
  /** The environment to read KUBECONFIG, HOME and KUBERNETES_SERVICE_HOST from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedConnection extends KubeConnection {
  /** Where the configuration came from and which context, for messages ("/root/.kube/config, context kind-kind"). */
  source: string;
  context: string;
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Loads the kubeconfig kubectl would use, or throws an error naming every place it looked. */
export function resolveKubeConnection(choice: KubeconfigChoice = {}): ResolvedConnection {
  const env = choice.env ?? process.env;
  const kc = new KubeConfig();
  let source: string;
  if (choice.kubeconfig !== undefined && choice.kubeconfig !== '') {
    if (!existsSync(choice.kubeconfig)) throw new Error(`kubeconfig ${choice.kubeconfig} (from --kubeconfig) does not exist`);
    loadFile(kc, choice.kubeconfig);
    source = choice.kubeconfig;
  } else {
    const looked: string[] = ['--kubeconfig (not given)'];
    const fromEnv = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p !== '');
    const present = fromEnv.filter((p) => existsSync(p));
    const home = join(env.HOME ?? homedir(), '.kube', 'config');
    if (fromEnv.length > 0) looked.push(`$KUBECONFIG=${env.KUBECONFIG} (${present.length === 0 ? 'no such file' : 'found'})`);
    else looked.push('$KUBECONFIG (unset)');
    if (present.length > 0) {
      // kubectl merges the files: the first file that sets a name (or current-context) wins.
      loadFile(kc, present[0]!);
      for (const p of present.slice(1)) {
        const one = new KubeConfig();
        loadFile(one, p);
        if (!kc.currentContext && one.currentContext) kc.setCurrentContext(one.currentContext);
        for (const c of one.clusters) if (kc.getCluster(c.name) === null) kc.addCluster(c);
        for (const u of one.users) if (kc.getUser(u.name) === null) kc.addUser(u);
        for (const c of one.contexts) if (kc.getContextObject(c.name) === null) kc.addContext(c);
      }
      source = present.join(delimiter);
    } else if (fromEnv.length === 0 && existsSync(home)) {
      loadFile(kc, home);
      source = home;
    } else {
      if (fromEnv.length === 0) looked.push(`${home} (no such file)`);
      const host = env.KUBERNETES_SERVICE_HOST;
      if (host !== undefined && host !== '' && existsSync(IN_CLUSTER_TOKEN)) {
        kc.loadFromCluster();
        source = 'the in-cluster service account';
      } else {
        looked.push(`the in-cluster service account (${host ? `${IN_CLUSTER_TOKEN} missing` : 'KUBERNETES_SERVICE_HOST unset: not in a pod'})`);
        throw new Error(`no kubeconfig found; looked at ${looked.join(', ')}. Pass --kubeconfig <file> or set KUBECONFIG`);
      }
    }
  }
  if (choice.context !== undefined && choice.context !== '') {
    if (kc.getContextObject(choice.context) === null) {
      const names = kc.getContexts().map((c) => c.name);
      throw new Error(`context "${choice.context}" is not in ${source} (its contexts: ${names.length > 0 ? names.join(', ') : 'none'})`);
    }
    kc.setCurrentContext(choice.context);
  }
  const context = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(context ? `${source}: context "${context}" names no cluster that the file defines` : `${source}: no current-context; pass --context (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
  }
  return { config: kc, server: cluster.server.replace(/\/$/, ''), source, context };
}

function loadFile(kc: KubeConfig, file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (text.trim() === '') throw new Error(`kubeconfig ${file} is empty`);
  try {
    kc.loadFromString(text);
    kc.makePathsAbsolute(dirname(file));
  } catch (err) {
    throw new Error(`kubeconfig ${file} is not a valid kubeconfig: ${(err as Error).message}`, { cause: err });
  }
}
