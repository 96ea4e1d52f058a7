// Encoded resources, shared by every proxy that gets the same content. A resource is
// encoded once per distinct content; its version is a hash of that content.
import { createHash } from 'node:crypto';
import { encodeEnvoyJson } from './envoy-json.js';
import { freezeShared } from '../util/freeze.js';
import { encodeAny, encodeDeltaResource, frameDeltaResource, frameSotwResource } from './wire.js';
import type { EnvoyResource, TypeUrl } from '../translate/types.js';

export interface CachedResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  /** Content hash (16 hex digits). */
  readonly version: string;
  /** The resource as an encoded google.protobuf.Any. */
  readonly any: Buffer;
  /** The resource in Envoy's JSON form, for debug dumps. */
  readonly body: Record<string, unknown>;
  /** The delta `Resource` wrapper, made on first use. */
  deltaBytes(): Buffer;
  /** The Any framed as a DiscoveryResponse `resources` field, made on first use. */
  sotwFramed(): Buffer;
  /** The delta Resource framed as a DeltaDiscoveryResponse `resources` field, made on first use. */
  deltaFramed(): Buffer;
}

class Entry implements CachedResource {
  private deltaField: Buffer | undefined;
  /** The Any, framed as a SotW `resources` field; `any` is a view into it. */
  private readonly sotwField: Buffer;
  readonly any: Buffer;
  constructor(
    readonly typeUrl: TypeUrl,
    readonly name: string,
    readonly version: string,
    anyBytes: Buffer,
    readonly body: Record<string, unknown>,
    /** Its key in the cache: type, name and version. */
    readonly key: string,
  ) {
    this.sotwField = frameSotwResource(anyBytes);
    this.any = this.sotwField.subarray(this.sotwField.length - anyBytes.length);
  }
  deltaBytes(): Buffer {
    const framed = this.deltaFramed();
    return framed.subarray(framed.length - this.deltaLength!);
  }
  private deltaLength: number | undefined;
  sotwFramed(): Buffer {
    return this.sotwField;
  }
  deltaFramed(): Buffer {
    if (!this.deltaField) {
      const resource = encodeDeltaResource(this.name, this.version, this.any);
      this.deltaField = frameDeltaResource(resource);
      this.deltaLength = resource.length;
    }
    return this.deltaField;
  }
}

export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export class ResourceCache {
  private readonly entries = new Map<string, Entry>();
  encodes = 0;
  hits = 0;

  /**
   * Entries by the body object they were made from: translation hands back the same object
   * for a piece that did not change (translate/memo.ts), which needs no hashing at all.
   * Bodies are never changed once interned.
   */
  private readonly byBody = new WeakMap<object, Entry>();

  /** The shared encoded form of `res`; encodes only content not seen before. */
  intern(typeUrl: TypeUrl, res: EnvoyResource): CachedResource {
    const known = this.byBody.get(res.body);
    if (known !== undefined && known.typeUrl === typeUrl && known.name === res.name) {
      const live = this.entries.get(known.key);
      if (live === known) {
        this.hits++;
        return known;
      }
      // Swept since: the live entry of that content, if another body made one, else this one again.
      if (live) {
        this.byBody.set(res.body, live);
        this.hits++;
        return live;
      }
      this.entries.set(known.key, known);
      this.hits++;
      return known;
    }
    const json = JSON.stringify(res.body);
    const version = contentHash(json);
    const key = `${typeUrl}\n${res.name}\n${version}`;
    const found = this.entries.get(key);
    if (found) {
      this.byBody.set(res.body, found);
      this.hits++;
      return found;
    }
    const typeName = typeUrl.slice(typeUrl.indexOf('/') + 1);
    const bytes = encodeEnvoyJson(typeName, res.body, `${typeName}[${res.name}]`);
    const entry = new Entry(typeUrl, res.name, version, encodeAny(typeUrl, bytes), res.body, key);
    this.entries.set(key, entry);
    freezeShared(res.body);
    this.byBody.set(res.body, entry);
    this.encodes++;
    return entry;
  }

  /** Drops every entry not in `live`. */
  sweep(live: Set<CachedResource>): number {
    let dropped = 0;
    for (const [key, e] of this.entries) {
      if (!live.has(e)) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  get size(): number {
    return this.entries.size;
  }
}
