// What meshd sent one proxy, by type: the resources its stream holds as meshd sent them,
// for the debug config dumps (HTTP /debug/config_dump and istio.io/debug/config_dump).
// Private keys never leave meshd through a dump: they are replaced as Envoy's own
// config_dump replaces them.
import { PUSH_ORDER, TypeUrl } from '../translate/types.js';
import type { Connection, ProxyConfigSource } from './connection.js';
import type { CachedResource } from './resource-cache.js';

export const REDACTED = '[redacted]';

/** A Secret's Envoy JSON with its private key (if any) replaced by "[redacted]". */
export function redactKeys(body: Record<string, unknown>): Record<string, unknown> {
  const tls = body.tls_certificate as Record<string, unknown> | undefined;
  if (!tls?.private_key) return body;
  return { ...body, tls_certificate: { ...tls, private_key: { inline_string: REDACTED } } };
}

export interface DumpedResource {
  name: string;
  version: string;
  /** Envoy JSON, keys redacted. */
  body: Record<string, unknown>;
  /** The encoded Any meshd sent; undefined for a Secret holding a key (re-encode `body`). */
  any: Buffer | undefined;
}

function dumped(type: TypeUrl, e: CachedResource): DumpedResource {
  if (type !== TypeUrl.Secret) return { name: e.name, version: e.version, body: e.body, any: e.any };
  const body = redactKeys(e.body);
  return { name: e.name, version: e.version, body, any: body === e.body ? e.any : undefined };
}

/**
 * Per type (in push order), the resources the proxy holds from meshd, sorted by name. A
 * resource the proxy said it already had (delta's initial versions) is shown as meshd has it
 * now. Types the proxy never asked for are absent.
 */
export function sentResources(conn: Connection, config: Pick<ProxyConfigSource, 'resourcesFor'>): Map<TypeUrl, DumpedResource[]> {
  const out = new Map<TypeUrl, DumpedResource[]>();
  let view: ReturnType<ProxyConfigSource['resourcesFor']> | undefined;
  for (const type of PUSH_ORDER) {
    const sub = conn.watches.get(type)?.subscription;
    if (!sub?.requested) continue;
    const list: DumpedResource[] = [];
    for (const [name, held] of sub.heldEntries()) {
      let entry: CachedResource | undefined = typeof held === 'string' ? undefined : held;
      if (!entry) {
        view ??= config.resourcesFor(conn.ctx);
        entry = view.byType[type].get(name) ?? conn.ownSecrets.find((s) => s.name === name);
      }
      if (entry) list.push(dumped(type, entry));
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    out.set(type, list);
  }
  return out;
}
