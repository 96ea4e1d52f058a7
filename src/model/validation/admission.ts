// Warnings for a valid Istio object at admission: what the validation stage would report
// about it against the config meshd holds now, as warnings rather than refusals, since the
// order objects are applied in varies (the DestinationRule or Service may come next):
// - a destination subset no DestinationRule defines yet (IST0101; in a snapshot, an Error
//   that leaves the VirtualService out);
// - a destination host that is no Service yet (IST0101);
// - a host an existing mesh VirtualService already holds for sidecars (IST0109), a Gateway
//   server another Gateway keeps (IST0145), a PeerAuthentication an older one overrides
//   (IST0167): the rules of the stage, run with this object in place of its stored version;
// - an AuthorizationPolicy using an HTTP-only field where it selects TCP ports (IST0167), or
//   naming an extension provider meshd does not have (IST0101);
// - a RequestAuthentication whose jwksUri names a mesh Service (or port) that does not exist
//   (IST0101); an AuthorizationPolicy reading a verified JWT on pods no RequestAuthentication
//   applies to (IST0167).
import type { IstioObject, VirtualServiceObject } from '../objects.js';
import type { MeshSnapshot } from '../mesh.js';
import { resolveHost } from '../istio.js';
import { notFound, sortFindings, type Finding } from '../finding.js';
import { destinationsOf } from './destinations.js';
import { definedSubsets, undefinedSubsetFindings } from './subsets.js';
import { meshHostConflictFindings } from './mesh-hosts.js';
import { gatewayConflictFindings } from './gateway-servers.js';
import { decidePeerAuthentications } from './peer-authentications.js';
import { ROOT_NAMESPACE } from '../istio-scope.js';
import { authorizationPolicyFindings } from './authorization-policies.js';
import { requestAuthenticationFindings, requestPrincipalFindings } from './request-authentications.js';

type Named = { metadata: { namespace: string; name: string } };

const key = (o: Named): string => `${o.metadata.namespace}/${o.metadata.name}`;

/** `list` (sorted by namespace/name) with `obj` in place of the object of its name. */
function withObject<T extends Named>(list: readonly T[], obj: T): T[] {
  return [...list.filter((o) => key(o) !== key(obj)), obj].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function about(obj: Named & { kind: string }, findings: readonly Finding[]): Finding[] {
  return findings.filter((f) => f.kind === obj.kind && f.namespace === obj.metadata.namespace && f.name === obj.metadata.name);
}

function hostsNotFound(vs: VirtualServiceObject, snapshot: MeshSnapshot): Finding[] {
  const out: Finding[] = [];
  for (const d of destinationsOf(vs)) {
    if (d.host.includes('*') || snapshot.serviceByHost.has(resolveHost(d.host, vs.metadata.namespace, snapshot.domain))) continue;
    const f = notFound(vs, `${d.field}.host`, d.mirror ? 'mirror host' : 'host', d.host);
    f.message += ' (no Service has it yet; meshd sends nothing there until one does)';
    out.push(f);
  }
  return out;
}

/** The warnings for `obj` (valid on its own) against `snapshot`, sorted; every one a Warning. */
export function admissionWarnings(obj: IstioObject, snapshot: MeshSnapshot, now: number = Date.now()): Finding[] {
  const config = snapshot.config;
  let found: Finding[] = [];
  switch (obj.kind) {
    case 'VirtualService':
      found = [
        ...undefinedSubsetFindings(obj, definedSubsets(config.destinationRules, snapshot.domain), snapshot.domain, 'Warning'),
        ...hostsNotFound(obj, snapshot),
        ...about(obj, meshHostConflictFindings(withObject(config.virtualServices, obj), snapshot.domain)),
      ];
      break;
    case 'Gateway':
      found = about(obj, gatewayConflictFindings(withObject(config.gateways, obj), snapshot.services));
      break;
    case 'PeerAuthentication': {
      // A policy being created has no creation time yet when the apiserver does not set one first: it is the newest.
      const pa = obj.metadata.creationTimestamp ? obj : { ...obj, metadata: { ...obj.metadata, creationTimestamp: new Date(now).toISOString() } };
      found = about(obj, decidePeerAuthentications(withObject(config.peerAuthentications, pa), config.rootNamespace ?? ROOT_NAMESPACE).findings);
      break;
    }
    case 'AuthorizationPolicy':
      found = [
        ...authorizationPolicyFindings({ policies: [obj], services: snapshot.services, pods: snapshot.pods.values(), rootNamespace: config.rootNamespace ?? ROOT_NAMESPACE, extensionProviders: snapshot.meshConfig.extensionProviders }),
        ...requestPrincipalFindings({ authorizationPolicies: [obj], requestAuthentications: config.requestAuthentications ?? [], pods: snapshot.pods.values(), rootNamespace: config.rootNamespace ?? ROOT_NAMESPACE }),
      ];
      break;
    case 'RequestAuthentication':
      found = requestAuthenticationFindings({ policies: [obj], services: snapshot.services, domain: snapshot.domain });
      break;
    case 'DestinationRule':
      break;
  }
  return sortFindings(found.map((f) => ({ ...f, severity: 'Warning' })));
}
