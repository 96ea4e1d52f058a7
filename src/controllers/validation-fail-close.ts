// Proves that the validating webhook works before it is made fail-closed, as istiod does:
// Istio ships `istio-validator-istio-system` with failurePolicy Ignore, and the leader
// switches it to Fail only once the apiserver has been seen to call meshd's webhook and
// refuse invalid config. The proof is a server-side dry-run create (`?dryRun=All`, nothing is
// stored) of a Gateway without servers, `invalid-gateway` in meshd's namespace; it counts
// only when the apiserver says one of this configuration's webhooks denied it with meshd's
// message for that object. Until then it is retried with backoff (1 s doubling to 5 min).
// Once proven it stays proven for this leadership term: meshd never writes Ignore back, so
// there is nothing to flip back and forth; the configuration patcher keeps Fail in place.
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import type { BackoffPolicy } from '../kube/resilient-informer.js';
import type { Logger } from '../util/log.js';
import { clientText } from '../util/client-text.js';

/** The dry-run object's name (Istio's). */
export const PROBE_GATEWAY = 'invalid-gateway';
export const FAIL_CLOSE_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 5 * 60_000 };

export type ProbeResult = { proven: true } | { proven: false; reason: string };

/** What the dry run asks for: a Gateway with no servers, which meshd's validation refuses. */
export function probeGateway(namespace: string): Record<string, unknown> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: PROBE_GATEWAY, namespace, labels: { 'istio.io/rev': 'default' } },
    spec: {},
  };
}

/** Whether an apiserver refusal is meshd's webhook refusing the probe (not a timeout, TLS or RBAC failure). */
export function refusedByMeshd(message: string, namespace: string, webhookNames: readonly string[]): boolean {
  return webhookNames.some((n) => message.includes(`admission webhook "${n}" denied the request`)) && message.includes(`Gateway ${namespace}/${PROBE_GATEWAY}`);
}

/** One dry run. Any outcome other than meshd's refusal is a reason, never a proof. */
export async function probeValidation(conn: KubeConnection, namespace: string, webhookNames: readonly string[]): Promise<ProbeResult> {
  const collection = `/apis/networking.istio.io/v1/namespaces/${encodeURIComponent(namespace)}/gateways`;
  const body = probeGateway(namespace);
  try {
    try {
      await kubeRequest(conn, 'POST', `${collection}?dryRun=All`, body);
    } catch (err) {
      // A real Gateway of that name: a dry-run update of it is refused the same way.
      if (!(err instanceof KubeApiError && err.statusCode === 409)) throw err;
      const existing = await kubeRequest<{ metadata?: { resourceVersion?: string } }>(conn, 'GET', `${collection}/${PROBE_GATEWAY}`);
      const meta = body.metadata as Record<string, unknown>;
      await kubeRequest(conn, 'PUT', `${collection}/${PROBE_GATEWAY}?dryRun=All`, { ...body, metadata: { ...meta, resourceVersion: existing.metadata?.resourceVersion } });
    }
    return { proven: false, reason: 'the apiserver accepted the invalid Gateway: it did not call the webhook, or ignored a failed call' };
  } catch (err) {
    if (!(err instanceof KubeApiError)) return { proven: false, reason: clientText(String(err), 300) };
    if (refusedByMeshd(err.message, namespace, webhookNames)) return { proven: true };
    if (err.statusCode === 404) return { proven: false, reason: 'the Gateway kind (networking.istio.io/v1) is not served: are the CRDs installed?' };
    return { proven: false, reason: clientText(err.message, 300) };
  }
}

export interface ValidationFailCloseOptions {
  conn: KubeConnection;
  /** meshd's namespace, where the dry run is made. */
  namespace: string;
  log: Logger;
  /** Called once, when the proof succeeds. */
  onProven: () => void;
  backoff?: BackoffPolicy;
}

export class ValidationFailClose {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private delay: number;
  private lastReason: string | undefined;
  private webhookNames: readonly string[] = [];
  proven = false;
  /** Dry runs made (for tests and logs). */
  attempts = 0;

  constructor(private readonly o: ValidationFailCloseOptions) {
    this.delay = (o.backoff ?? FAIL_CLOSE_BACKOFF).initialMs;
  }

  /** The configuration's caBundle is meshd's root: the proof can start (again, if it was waiting). */
  bundleInPlace(webhookNames: readonly string[]): void {
    this.webhookNames = webhookNames;
    if (this.proven || this.stopped || this.running || this.timer) return;
    void this.attempt();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async attempt(): Promise<void> {
    this.running = true;
    this.attempts++;
    const r = await probeValidation(this.o.conn, this.o.namespace, this.webhookNames);
    this.running = false;
    if (this.stopped) return;
    if (r.proven) {
      this.proven = true;
      this.o.log.info({ attempts: this.attempts }, 'the apiserver called the validating webhook and it refused invalid config (dry run); switching failurePolicy to Fail');
      this.o.onProven();
      return;
    }
    // One log line per new reason; repeats are debug, so a long wait does not fill the log.
    const level = r.reason === this.lastReason ? 'debug' : 'info';
    this.lastReason = r.reason;
    this.o.log[level]({ reason: r.reason, retryInMs: this.delay }, 'the validating webhook is not proven yet; failurePolicy stays as it is');
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.attempt();
    }, this.delay);
    this.timer.unref();
    this.delay = Math.min(this.delay * 2, (this.o.backoff ?? FAIL_CLOSE_BACKOFF).maxMs);
  }
}
