// The validation stage: one pure, deterministic pass over the config a snapshot is built
// from, deciding what the translator serves (which VirtualServices are accepted, which
// Gateway keeps a port and host, which PeerAuthentication applies) and returning typed
// findings for everything left out or ignored. The snapshot carries the findings
// (MeshSnapshot.findings); the log, metrics, status, the webhook, `meshd validate` and
// `meshd analyze` read them.
//
// Rules, and the codes they report (Istio's analysis codes):
// - an object's own validation (model/objects.ts, istio.ts, security.ts), refused by its
//   source: IST0106 SchemaValidationError, Error (refusals.ts);
// - a destination subset no DestinationRule defines: IST0101 ReferencedResourceNotFound,
//   Error, the VirtualService is left out (subsets.ts);
// - a Gateway server (or host) another Gateway keeps, or a listening port already carrying
//   another protocol: IST0145 ConflictingGateways, Error (gateway-servers.ts);
// - a PeerAuthentication an older one overrides, or a workload policy in the root
//   namespace: IST0167 IneffectivePolicy, Error (peer-authentications.ts);
// - a host an earlier mesh VirtualService already holds for sidecars: IST0109
//   ConflictingMeshGatewayVirtualServiceHosts, Error (mesh-hosts.ts);
// - several Sidecars without a workloadSelector in one namespace: IST0111
//   MultipleSidecarsWithoutWorkloadSelectors, Error, on each; the oldest applies (sidecars.ts);
// - an AuthorizationPolicy using an HTTP-only field where it selects TCP ports: IST0167
//   IneffectivePolicy, Warning; a CUSTOM policy's extension provider missing from the mesh
//   config or unusable: IST0101, Error; CUSTOM policies naming different providers on one pod:
//   IST0167, Error (authorization-policies.ts);
// - a RequestAuthentication's jwksUri naming a mesh Service (or a port of it) that does not
//   exist: IST0101 ReferencedResourceNotFound, Error; the policy is still served; an
//   AuthorizationPolicy reading a verified JWT (requestPrincipals, request.auth.*) on pods no
//   RequestAuthentication applies to: IST0167 IneffectivePolicy, Warning (request-authentications.ts).
// - a ServiceEntry port whose protocol is unset or TCP without `addresses`: IST0134
//   ServiceEntryAddressesRequired, Warning (service-entries.ts).
// - Telemetries: several without a selector in one namespace, IST0160
//   MultipleTelemetriesWithoutWorkloadSelectors, Error (the oldest applies); a provider name the
//   mesh config does not define, or of a kind the field cannot use, IST0157
//   InvalidTelemetryProvider, Warning; settings meshd does not apply (metrics overrides, a
//   selector in the root namespace), IST0167 IneffectivePolicy, Info or Warning (telemetries.ts).
import type { AuthorizationPolicyObject, RequestAuthenticationObject, DestinationRuleObject, GatewayObject, PeerAuthenticationObject, PodObject, ServiceEntryObject, SidecarObject, TelemetryObject, VirtualServiceObject } from '../objects.js';
import type { ExtensionProvider } from '../extension-providers.js';
import { telemetryFindings } from './telemetries.js';
import type { MeshService } from '../service.js';
import { sortFindings, type Finding } from '../finding.js';
import { definedSubsets, undefinedSubsetFindings } from './subsets.js';
import { gatewayConflictFindings } from './gateway-servers.js';
import { decidePeerAuthentications, type PeerAuthenticationDecisions } from './peer-authentications.js';
import { meshHostConflictFindings } from './mesh-hosts.js';
import { sidecarFindings } from './sidecars.js';
import { authorizationPolicyFindings } from './authorization-policies.js';
import { requestAuthenticationFindings, requestPrincipalFindings } from './request-authentications.js';
import { serviceEntryFindings } from './service-entries.js';

export interface ValidationInput {
  /** Each kind sorted by namespace/name. */
  virtualServices: readonly VirtualServiceObject[];
  destinationRules: readonly DestinationRuleObject[];
  gateways: readonly GatewayObject[];
  peerAuthentications: readonly PeerAuthenticationObject[];
  sidecars?: readonly SidecarObject[];
  serviceEntries?: readonly ServiceEntryObject[];
  authorizationPolicies?: readonly AuthorizationPolicyObject[];
  requestAuthentications?: readonly RequestAuthenticationObject[];
  /** The mesh's pods (which workloads an AuthorizationPolicy selects, and their ports). */
  pods?: Iterable<PodObject>;
  telemetries?: readonly TelemetryObject[];
  /** The mesh's services, sorted by hostname (gateway listening ports depend on them). */
  services: readonly MeshService[];
  domain: string;
  rootNamespace: string;
  /** The mesh config's extensionProviders (AuthorizationPolicy CUSTOM and Telemetry providers name them). */
  extensionProviders?: readonly ExtensionProvider[];
}

export interface ConfigValidation {
  /** The VirtualServices served: those without an error that leaves them out. */
  virtualServices: VirtualServiceObject[];
  peerAuthenticationDecisions: PeerAuthenticationDecisions;
  /** Sorted as istioctl sorts them. */
  findings: Finding[];
}

export function validateConfig(input: ValidationInput): ConfigValidation {
  const findings: Finding[] = [];
  const subsets = definedSubsets(input.destinationRules, input.domain);
  const virtualServices = input.virtualServices.filter((vs) => {
    const missing = undefinedSubsetFindings(vs, subsets, input.domain);
    findings.push(...missing);
    return missing.length === 0;
  });
  findings.push(...meshHostConflictFindings(virtualServices, input.domain));
  findings.push(...gatewayConflictFindings(input.gateways, input.services));
  const peerAuthenticationDecisions = decidePeerAuthentications(input.peerAuthentications, input.rootNamespace);
  findings.push(...peerAuthenticationDecisions.findings);
  findings.push(...sidecarFindings(input.sidecars ?? []));
  findings.push(...serviceEntryFindings(input.serviceEntries ?? []));
  if (input.authorizationPolicies?.length) {
    findings.push(...authorizationPolicyFindings({ policies: input.authorizationPolicies, services: input.services, pods: input.pods ?? [], rootNamespace: input.rootNamespace, extensionProviders: input.extensionProviders ?? [] }));
  }
  if (input.requestAuthentications?.length) {
    findings.push(...requestAuthenticationFindings({ policies: input.requestAuthentications, services: input.services, domain: input.domain }));
  }
  if (input.authorizationPolicies?.length) {
    findings.push(...requestPrincipalFindings({ authorizationPolicies: input.authorizationPolicies, requestAuthentications: input.requestAuthentications ?? [], pods: input.pods ?? [], rootNamespace: input.rootNamespace }));
  }
  if (input.telemetries?.length) {
    findings.push(...telemetryFindings({ telemetries: input.telemetries, providers: input.extensionProviders ?? [], services: input.services, rootNamespace: input.rootNamespace }));
  }
  return { virtualServices, peerAuthenticationDecisions, findings: sortFindings(findings) };
}

export { refusalFindings } from './refusals.js';
