// Telemetry findings: ambiguous namespaces (several Telemetries without a selector: the oldest
// applies), provider names the mesh config does not define or of a kind the field cannot use,
// collectors that are no mesh service, and settings meshd does not apply (metrics, which need
// Istio's stats filter; a selector in the root namespace).
import type { TelemetryObject } from '../objects.js';
import type { MeshService } from '../service.js';
import { collectorTarget, telemetryProviderNamed, type ExtensionProvider } from '../extension-providers.js';
import { hasWorkloadScope, olderTelemetryFirst } from '../telemetry.js';
import { finding, type Finding } from '../finding.js';

export interface TelemetryFindingsInput {
  telemetries: readonly TelemetryObject[];
  providers: readonly ExtensionProvider[];
  services: readonly MeshService[];
  rootNamespace: string;
}

/** The provider kinds each Telemetry field can use. */
const USABLE: Record<'accessLogging' | 'tracing' | 'metrics', readonly string[]> = {
  accessLogging: ['envoyFileAccessLog'],
  tracing: ['zipkin', 'opentelemetry'],
  metrics: ['prometheus'],
};

export function telemetryFindings(input: TelemetryFindingsInput): Finding[] {
  const out: Finding[] = [];
  const byNamespace = new Map<string, TelemetryObject[]>();
  for (const t of input.telemetries) {
    if (hasWorkloadScope(t)) continue;
    const list = byNamespace.get(t.metadata.namespace);
    if (list) list.push(t);
    else byNamespace.set(t.metadata.namespace, [t]);
  }
  for (const [ns, list] of byNamespace) {
    if (list.length < 2) continue;
    const sorted = [...list].sort(olderTelemetryFirst);
    const names = list.map((t) => t.metadata.name).join(', ');
    for (const t of list) {
      out.push(finding('MultipleTelemetriesWithoutWorkloadSelectors', t, 'spec.selector', `The Telemetries [${names}] in namespace "${ns}" have no workload selector, which can lead to undefined behavior; meshd applies the oldest (${sorted[0]!.metadata.name}).`));
    }
  }
  const serviceByHost = new Map(input.services.map((s) => [s.hostname, s]));
  for (const t of input.telemetries) {
    if (t.metadata.namespace === input.rootNamespace && Object.keys(t.spec.selector?.matchLabels ?? {}).length > 0) {
      out.push(finding('IneffectivePolicy', t, 'spec.selector', `A Telemetry with a selector in the root namespace "${input.rootNamespace}" applies only to workloads of that namespace, not mesh-wide.`, 'Warning'));
    }
    for (const field of ['accessLogging', 'tracing', 'metrics'] as const) {
      (t.spec[field] ?? []).forEach((entry, i) => {
        (entry.providers ?? []).forEach((ref, j) => {
          const path = `spec.${field}[${i}].providers[${j}].name`;
          const p = telemetryProviderNamed(input.providers, ref.name);
          if (!p) {
            out.push(finding('InvalidTelemetryProvider', t, path, `The Telemetry ${t.metadata.namespace}/${t.metadata.name} refers to provider "${ref.name}", which the mesh config's extensionProviders do not define; it is ignored.`));
          } else if (!USABLE[field].includes(p.kind)) {
            out.push(finding('InvalidTelemetryProvider', t, path, `Provider "${ref.name}" is ${p.kind}, which ${field} cannot use (meshd supports ${USABLE[field].join(', ')}); it is ignored.`));
          } else if (field === 'tracing' && (p.kind === 'zipkin' || p.kind === 'opentelemetry')) {
            const target = collectorTarget(p, serviceByHost);
            if (!target.ok) out.push(finding('ReferencedResourceNotFound', t, path, `Tracing provider "${ref.name}" cannot be reached: ${target.reason}; no spans are sent.`, 'Warning'));
          }
        });
      });
    }
    (t.spec.metrics ?? []).forEach((m, i) => {
      // Envoy's own stats on 15090 are what a `prometheus` provider gets: only overrides and the interval go unapplied.
      const what = [m.overrides?.length ? 'overrides' : '', m.reportingInterval ? 'reportingInterval' : ''].filter(Boolean);
      if (what.length === 0) return;
      out.push(
        finding(
          'IneffectivePolicy',
          t,
          `spec.metrics[${i}]${what.length === 1 ? `.${what[0]}` : ''}`,
          `${what.join(' and ')} ${what.length === 1 ? 'is' : 'are'} not applied: upstream Envoy has no Istio stats filter (istio_requests_total...); meshd's proxies expose Envoy's own stats on 15090 whatever this says.`,
          'Info',
        ),
      );
    });
  }
  return out;
}
