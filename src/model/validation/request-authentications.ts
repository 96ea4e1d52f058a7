// What a RequestAuthentication does not do as written, found across objects: a jwksUri naming
// a mesh Service (`<name>.<namespace>.svc.<domain>`) that does not exist, or a port that
// Service does not have. Envoy could not fetch those keys, so every request carrying a token
// of that issuer would be refused (401). Pure; a rule of the validation stage.
import type { RequestAuthenticationObject } from '../objects.js';
import { jwksLocation } from '../request-authentication.js';
import { notFound, type Finding } from '../finding.js';
import type { MeshService } from '../service.js';

export interface RequestAuthenticationInput {
  policies: readonly RequestAuthenticationObject[];
  services: readonly MeshService[];
  domain: string;
}

/** IST0101 (ReferencedResourceNotFound) for each jwksUri whose mesh Service, or its port, does not exist. */
export function requestAuthenticationFindings(input: RequestAuthenticationInput): Finding[] {
  const out: Finding[] = [];
  const suffix = `.svc.${input.domain}`;
  let byHost: Map<string, MeshService> | undefined;
  for (const p of input.policies) {
    (p.spec.jwtRules ?? []).forEach((rule, i) => {
      const loc = rule.jwksUri ? jwksLocation(rule.jwksUri) : undefined;
      if (!loc || !loc.host.endsWith(suffix)) return;
      byHost ??= new Map(input.services.map((s) => [s.hostname, s]));
      const svc = byHost.get(loc.host);
      const field = `spec.jwtRules[${i}].jwksUri`;
      if (!svc) {
        const f = notFound(p, field, 'host', loc.host);
        f.message += ' (no Service has it: Envoy cannot fetch the keys, and tokens of this issuer get 401)';
        out.push(f);
      } else if (!svc.ports.some((sp) => sp.port === loc.port)) {
        const f = notFound(p, field, 'port', `${loc.host}:${loc.port}`);
        f.message += ` (the Service's ports are ${svc.ports.map((sp) => sp.port).join(', ')})`;
        out.push(f);
      }
    });
  }
  return out;
}
