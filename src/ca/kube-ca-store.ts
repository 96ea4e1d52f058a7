// The root of trust kept in Kubernetes Secrets, as istiod keeps it: a plugged-in `cacerts`
// Secret when there is one in meshd's namespace, else the self-signed root in Secret
// `istio-ca-secret`, created by the first replica to start (the others, and later
// restarts, read it back). Transient API failures are retried with backoff.
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import { CA_CERT_FILE, CA_KEY_FILE, CERT_CHAIN_FILE, ROOT_CERT_FILE } from './ca-files.js';
import { RootOfTrustError } from './errors.js';
import { generateSelfSignedRoot, type CaMaterial } from './root-of-trust.js';
import type { CaKeyType } from './keys.js';

export const PLUGGED_CA_SECRET = 'cacerts';
export const SELF_SIGNED_CA_SECRET = 'istio-ca-secret';
/** The Secret type Istio gives istio-ca-secret. */
export const SELF_SIGNED_CA_SECRET_TYPE = 'istio.io/ca-root';

interface Secret {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

export interface KubeRootOptions {
  conn: KubeConnection;
  namespace: string;
  keyType: CaKeyType;
  trustDomain: string;
  log: Logger;
  /** Backoff between retries of failed API calls; default 200 ms doubling to 10 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** Give up after this long (default: never). */
  timeoutMs?: number;
}

export interface KubeRoot {
  material: CaMaterial;
  /** "Secret <ns>/<name>" plus whether it was created now. */
  source: string;
  created: boolean;
}

const decode = (s: Secret, key: string): string | undefined => (s.data?.[key] !== undefined ? Buffer.from(s.data[key]!, 'base64').toString('utf8') : undefined);

/** A failure worth retrying: the API server unreachable, overloaded or failing. */
function transient(err: unknown): boolean {
  if (err instanceof KubeApiError) return err.statusCode === 429 || err.statusCode >= 500;
  return !(err instanceof RootOfTrustError);
}

async function getSecret(o: KubeRootOptions, name: string): Promise<Secret | undefined> {
  try {
    return await kubeRequest<Secret>(o.conn, 'GET', `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/secrets/${name}`);
  } catch (err) {
    if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
    throw err;
  }
}

async function attempt(o: KubeRootOptions): Promise<KubeRoot> {
  const plugged = await getSecret(o, PLUGGED_CA_SECRET);
  if (plugged) {
    const where = `Secret ${o.namespace}/${PLUGGED_CA_SECRET}`;
    const caCertPem = decode(plugged, CA_CERT_FILE);
    const caKeyPem = decode(plugged, CA_KEY_FILE);
    if (!caCertPem || !caKeyPem) throw new RootOfTrustError(`${where}: keys ${CA_CERT_FILE} and ${CA_KEY_FILE} are required (has: ${Object.keys(plugged.data ?? {}).sort().join(', ') || 'none'})`);
    return { material: { caCertPem, caKeyPem, rootCertPem: decode(plugged, ROOT_CERT_FILE), certChainPem: decode(plugged, CERT_CHAIN_FILE) }, source: where, created: false };
  }
  const where = `Secret ${o.namespace}/${SELF_SIGNED_CA_SECRET}`;
  const fromSecret = (s: Secret): CaMaterial => {
    const caCertPem = decode(s, CA_CERT_FILE);
    const caKeyPem = decode(s, CA_KEY_FILE);
    if (!caCertPem || !caKeyPem) throw new RootOfTrustError(`${where}: keys ${CA_CERT_FILE} and ${CA_KEY_FILE} are required`);
    return { caCertPem, caKeyPem };
  };
  const existing = await getSecret(o, SELF_SIGNED_CA_SECRET);
  if (existing) return { material: fromSecret(existing), source: where, created: false };

  o.log.info({ secret: where, keyType: o.keyType }, 'no CA root in the cluster: generating a self-signed root');
  const material = generateSelfSignedRoot({ keyType: o.keyType, trustDomain: o.trustDomain });
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SELF_SIGNED_CA_SECRET, namespace: o.namespace, labels: { 'app.kubernetes.io/managed-by': 'meshd' } },
    type: SELF_SIGNED_CA_SECRET_TYPE,
    data: { [CA_CERT_FILE]: Buffer.from(material.caCertPem).toString('base64'), [CA_KEY_FILE]: Buffer.from(material.caKeyPem).toString('base64') },
  };
  try {
    await kubeRequest(o.conn, 'POST', `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/secrets`, body);
    return { material, source: where, created: true };
  } catch (err) {
    if (!(err instanceof KubeApiError && err.statusCode === 409)) throw err;
  }
  // Another replica created it first: everyone uses the winner's root.
  o.log.info({ secret: where }, 'another replica created the CA root first; using it');
  const winner = await getSecret(o, SELF_SIGNED_CA_SECRET);
  if (!winner) throw new KubeApiError(409, `/api/v1/namespaces/${o.namespace}/secrets/${SELF_SIGNED_CA_SECRET}`, 'created concurrently, then gone');
  return { material: fromSecret(winner), source: where, created: false };
}

/** Reads (or creates) the root of trust in the cluster, retrying while the API server fails. */
export async function loadKubeRoot(o: KubeRootOptions): Promise<KubeRoot> {
  const backoff = o.backoff ?? { initialMs: 200, maxMs: 10_000 };
  const deadline = o.timeoutMs !== undefined ? Date.now() + o.timeoutMs : Infinity;
  let delay = backoff.initialMs;
  for (;;) {
    try {
      return await attempt(o);
    } catch (err) {
      if (!transient(err) || Date.now() + delay > deadline) throw err;
      o.log.warn({ err: String(err), retryInMs: delay }, 'reading the CA root from the cluster failed; retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, backoff.maxMs);
    }
  }
}
