// In-process micro-benchmarks of meshd's stages, using src/ modules directly: what a
// config change costs before any byte reaches the network, and what one push to 1000
// connections costs without the network. Used to attribute the end-to-end figures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigStore } from '../src/model/store.js';
import { buildSnapshot, updateEndpoints } from '../src/model/mesh.js';
import { parseProxy } from '../src/model/proxy.js';
import type { EndpointSliceObject } from '../src/model/objects.js';
import { FileSource, loadDirectory } from '../src/sources/file/file-source.js';
import { ConfigGenerator } from '../src/xds/generator.js';
import { Connection, type ConnectionHooks, type Protocol } from '../src/xds/connection.js';
import { decodeDiscoveryRequest, encodeDiscoveryResponse, encodeMessage } from '../src/xds/wire.js';
import { proxyContext, translateContext } from '../src/translate/index.js';
import { TypeUrl } from '../src/translate/types.js';
import { silentLogger } from '../src/util/log.js';
import { DOMAIN, istioFile, renderIstio, writeIstio, changedEndpointIP, clusterName, newServiceSpec, renderService, serviceFile, serviceName, serviceSpec, writeAtomic, writeMesh } from './mesh-config.js';

export interface MicroResult {
  key: string;
  label: string;
  value: number;
  unit: string;
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? NaN;
}

const hooks: ConnectionHooks = { onSent: () => undefined, onAck: () => undefined, onNack: () => undefined, onStaleNonce: () => undefined, onSecretRefused: () => undefined };

function nodeId(i: number): string {
  return `sidecar~10.1.${Math.floor(i / 250)}.${(i % 250) + 1}~client-${i}.default~default.svc.cluster.local`;
}

export async function runMicro(o: { services: number; endpoints: number; connections: number; log: (s: string) => void }): Promise<MicroResult[]> {
  const out: MicroResult[] = [];
  const add = (key: string, label: string, value: number, unit = 'ms'): void => {
    out.push({ key, label, value, unit });
    o.log(`  micro: ${label}: ${unit === 'ms' ? value.toFixed(1) : Math.round(value)} ${unit}`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-micro-'));
  try {
    writeMesh(dir, o.services, o.endpoints);

    // ---- config source -------------------------------------------------------------
    let t = process.hrtime.bigint();
    const loaded = loadDirectory(dir);
    add('parseDirectoryMs', `parse + validate the config dir (${loaded.objects.length} objects, ${o.services} files)`, ms(t));

    const store = new ConfigStore();
    const files = new FileSource({ dir, store, log: silentLogger });
    files.reload();
    const reloads: number[] = [];
    for (let k = 0; k < 3; k++) {
      const spec = serviceSpec(k * 7, o.endpoints);
      spec.endpoints[0] = changedEndpointIP(k);
      writeAtomic(dir, serviceFile(spec.name), renderService(spec));
      t = process.hrtime.bigint();
      files.reload();
      reloads.push(ms(t));
    }
    add('fileReloadOneEditMs', 'FileSource.reload after editing ONE file', median(reloads));

    // ---- snapshot and translation --------------------------------------------------
    t = process.hrtime.bigint();
    const first = buildSnapshot(store, DOMAIN);
    add('buildSnapshotMs', 'buildSnapshot (full)', ms(t));

    const gen = new ConfigGenerator();
    t = process.hrtime.bigint();
    gen.update(first);
    add('initialUpdateMs', `generator.update, initial (encodes ${gen.cache.encodes} load assignments)`, ms(t));

    const proxy = parseProxy(nodeId(0), { NAMESPACE: 'default', LABELS: { app: 'bench-client' } });
    t = process.hrtime.bigint();
    const ctx = gen.context(proxy);
    add('proxyContextMs', 'generator.context (one proxy)', ms(t));

    t = process.hrtime.bigint();
    const pure = translateContext(first.snapshot, ctx);
    add('translateOnlyMs', 'translateContext, whole mesh, one proxy (JSON only, no encoding)', ms(t));
    add('translatedResources', 'resources for one proxy (CDS+EDS+LDS+RDS)', Object.values(pure).reduce((n, l) => n + l.length, 0), 'resources');

    const enc0 = gen.cache.encodes;
    t = process.hrtime.bigint();
    const view = gen.resourcesFor(ctx);
    add('translateEncodeMs', 'generator.resourcesFor, cold: translate + hash + encode, one proxy class', ms(t));
    add('translateEncodes', 'encodes for that translation', gen.cache.encodes - enc0, 'encodes');
    t = process.hrtime.bigint();
    gen.resourcesFor(ctx);
    add('resourcesForWarmMs', 'generator.resourcesFor, warm (cached view)', ms(t));

    const cds = [...view.byType[TypeUrl.Cluster].values()];
    const rds = [...view.byType[TypeUrl.RouteConfiguration].values()];
    add('cdsBytes', 'SotW CDS body (all clusters) per proxy', cds.reduce((n, e) => n + e.any.length, 0), 'bytes');
    add('rdsBytes', 'RDS route "80" (all virtual hosts) per proxy', rds.reduce((n, e) => n + e.any.length, 0), 'bytes');
    const encTimes: number[] = [];
    for (let k = 0; k < 20; k++) {
      t = process.hrtime.bigint();
      encodeDiscoveryResponse({ versionInfo: 'v', typeUrl: TypeUrl.Cluster, nonce: 'n', framedResources: cds.map((e) => e.sotwFramed()), controlPlane: 'meshd' });
      encTimes.push(ms(t));
    }
    add('sotwCdsFrameMs', 'frame one SotW CDS response (per proxy, per push)', median(encTimes));

    // ---- endpoint-only update ------------------------------------------------------
    const updTimes: number[] = [];
    const snapTimes: number[] = [];
    const encBefore = gen.cache.encodes;
    const rounds = 30;
    for (let k = 0; k < rounds; k++) {
      const name = serviceName((k * 31 + 3) % o.services);
      const old = store.get('EndpointSlice', 'default', `${name}-slice`)!;
      const next: EndpointSliceObject = { ...old, endpoints: old.endpoints.map((e, j) => (j === 0 ? { ...e, addresses: [`10.252.${k}.250`] } : e)) };
      store.upsert('bench', next);
      t = process.hrtime.bigint();
      const delta = updateEndpoints(store, gen.snapshot!, [`default/${name}`]);
      snapTimes.push(ms(t));
      t = process.hrtime.bigint();
      gen.update(delta);
      updTimes.push(ms(t));
    }
    add('updateEndpointsMs', 'updateEndpoints (snapshot, one slice changed)', median(snapTimes));
    add('edsUpdateMs', 'generator.update, endpoints only (one service)', median(updTimes));
    add('edsUpdateEncodes', 'encodes per endpoint-only update', (gen.cache.encodes - encBefore) / rounds, 'encodes');

    // ---- fan-out to connections, no network ----------------------------------------
    for (const protocol of ['sotw', 'delta'] as Protocol[]) {
      let bytes = 0;
      const sink = {
        write: (b: Buffer): Promise<void> => {
          bytes += b.length;
          return Promise.resolve();
        },
      };
      const conns: Connection[] = [];
      for (let i = 0; i < o.connections; i++) {
        const p = parseProxy(nodeId(i), { NAMESPACE: 'default', LABELS: { app: 'bench-client' } });
        conns.push(new Connection(p, protocol, gen, sink, hooks, 'meshd'));
      }
      const edsNames = [...gen.resourcesFor(conns[0]!.ctx).byType[TypeUrl.ClusterLoadAssignment].keys()];
      for (const c of conns) {
        if (protocol === 'sotw') {
          c.onSotwRequest(TypeUrl.Cluster, [], '', '', undefined);
          c.onSotwRequest(TypeUrl.ClusterLoadAssignment, edsNames, '', '', undefined);
          c.onSotwRequest(TypeUrl.Listener, [], '', '', undefined);
          c.onSotwRequest(TypeUrl.RouteConfiguration, ['80'], '', '', undefined);
        } else {
          c.onDeltaRequest(TypeUrl.Cluster, ['*'], [], {}, '', undefined);
          c.onDeltaRequest(TypeUrl.ClusterLoadAssignment, edsNames, [], {}, '', undefined);
          c.onDeltaRequest(TypeUrl.Listener, ['*'], [], {}, '', undefined);
          c.onDeltaRequest(TypeUrl.RouteConfiguration, ['80'], [], {}, '', undefined);
        }
      }
      t = process.hrtime.bigint();
      for (const c of conns) await c.flush();
      add(`${protocol}InitialFanoutMs`, `${protocol}: initial push to ${o.connections} connections (no network)`, ms(t));
      add(`${protocol}InitialBytesPerConn`, `${protocol}: initial bytes per connection`, bytes / o.connections, 'bytes');

      const fan: number[] = [];
      let edsBytes = 0;
      for (let k = 0; k < 5; k++) {
        const name = serviceName((k * 17 + 11) % o.services);
        const old = store.get('EndpointSlice', 'default', `${name}-slice`)!;
        store.upsert('bench', { ...old, endpoints: old.endpoints.map((e, j) => (j === 1 ? { ...e, addresses: [`10.253.${k}.250`] } : e)) });
        const req = gen.update(updateEndpoints(store, gen.snapshot!, [`default/${name}`]));
        bytes = 0;
        t = process.hrtime.bigint();
        for (const c of conns) c.schedule(req);
        for (const c of conns) await c.flush();
        fan.push(ms(t));
        edsBytes = bytes / o.connections;
      }
      add(`${protocol}EdsFanoutMs`, `${protocol}: one endpoint change pushed to ${o.connections} connections (no network)`, median(fan));
      add(`${protocol}EdsBytesPerConn`, `${protocol}: bytes per connection for one endpoint change`, edsBytes, 'bytes');

      // A new service: a full push.
      const spec = newServiceSpec(90 + (protocol === 'sotw' ? 0 : 1), o.endpoints);
      writeAtomic(dir, serviceFile(spec.name), renderService(spec));
      files.reload();
      t = process.hrtime.bigint();
      const full = buildSnapshot(store, DOMAIN, gen.snapshot);
      const req = gen.update(full);
      const build = ms(t);
      bytes = 0;
      t = process.hrtime.bigint();
      for (const c of conns) c.schedule(req);
      for (const c of conns) await c.flush();
      const fanout = ms(t);
      // Envoy then asks for the new cluster's endpoints.
      for (const c of conns) {
        if (protocol === 'sotw') c.onSotwRequest(TypeUrl.ClusterLoadAssignment, [...edsNames, clusterName(spec.name)], '', '', undefined);
        else c.onDeltaRequest(TypeUrl.ClusterLoadAssignment, [clusterName(spec.name)], [], {}, '', undefined);
      }
      t = process.hrtime.bigint();
      for (const c of conns) await c.flush();
      const edsFollow = ms(t);
      add(`${protocol}NewServiceBuildMs`, `${protocol}: new service: buildSnapshot + generator.update`, build);
      add(`${protocol}NewServiceFanoutMs`, `${protocol}: new service: full push to ${o.connections} connections (translate once + per-connection diff/frame)`, fanout);
      add(`${protocol}NewServiceEdsMs`, `${protocol}: new service: EDS for the new cluster to ${o.connections} connections`, edsFollow);
      add(`${protocol}NewServiceBytesPerConn`, `${protocol}: bytes per connection for one new service`, bytes / o.connections, 'bytes');
      for (const c of conns) c.close();
    }

    // ---- the cost of reading one SotW EDS ACK --------------------------------------
    const ack = encodeMessage('envoy.service.discovery.v3.DiscoveryRequest', {
      version_info: '0123456789abcdef',
      resource_names: [...gen.resourcesFor(ctx).byType[TypeUrl.ClusterLoadAssignment].keys()],
      type_url: TypeUrl.ClusterLoadAssignment,
      response_nonce: 'abc-1',
    });
    t = process.hrtime.bigint();
    for (let k = 0; k < 200; k++) decodeDiscoveryRequest(ack);
    add('sotwEdsAckDecodeMs', `decode one SotW EDS ACK (${o.services} names, ${ack.length} bytes)`, ms(t) / 200);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * The traffic-management case in process: the mesh plus `istio` DestinationRules and VirtualServices.
 * "For all" proxies: sidecars in one namespace with the same labels share one translation (one
 * proxy class), so translating 1000 distinct classes is not what meshd does; measured instead is
 * computing the resources for `connections` proxies (context + resourcesFor each, one shared view).
 */
export function runIstioMicro(o: { services: number; endpoints: number; istio: number; connections: number; log: (s: string) => void }): MicroResult[] {
  const out: MicroResult[] = [];
  const add = (key: string, label: string, value: number, unit = 'ms'): void => {
    out.push({ key, label, value, unit });
    o.log(`  micro (istio): ${label}: ${unit === 'ms' ? value.toFixed(1) : Math.round(value)} ${unit}`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'meshd-bench-istio-micro-'));
  try {
    writeMesh(dir, o.services, o.endpoints);
    writeIstio(dir, o.istio);
    const store = new ConfigStore();
    const files = new FileSource({ dir, store, log: silentLogger });
    let t = process.hrtime.bigint();
    files.reload();
    add('istioLoadMs', `load the config dir (${o.services} services, ${o.istio} VirtualServices, ${o.istio} DestinationRules)`, ms(t));
    t = process.hrtime.bigint();
    const snap = buildSnapshot(store, DOMAIN);
    add('istioBuildSnapshotMs', 'buildSnapshot (full, with VirtualServices/DestinationRules)', ms(t));

    const proxy = parseProxy(nodeId(0), { NAMESPACE: 'default', LABELS: { app: 'bench-client' } });
    const one: number[] = [];
    let resources = 0;
    for (let k = 0; k < 3; k++) {
      t = process.hrtime.bigint();
      const r = translateContext(snap.snapshot, proxyContext(snap.snapshot, proxy));
      one.push(ms(t));
      resources = Object.values(r).reduce((n, l) => n + l.length, 0);
    }
    add('istioTranslateProxyMs', 'translateContext, whole mesh, one proxy (median of 3; JSON, no encoding)', median(one));
    add('istioTranslatedResources', 'resources for one proxy (CDS+EDS+LDS+RDS)', resources, 'resources');

    const gen = new ConfigGenerator();
    gen.update(snap);
    t = process.hrtime.bigint();
    const ctx0 = gen.context(proxy);
    const view = gen.resourcesFor(ctx0);
    add('istioResourcesForColdMs', '"for all", one proxy class: generator.context + resourcesFor, cold (translate + hash + encode)', ms(t));
    const rds = [...view.byType[TypeUrl.RouteConfiguration].values()];
    add('istioRdsBytes', 'RDS route "80" (all virtual hosts) per proxy', rds.reduce((n, e) => n + e.any.length, 0), 'bytes');
    t = process.hrtime.bigint();
    for (let i = 0; i < o.connections; i++) gen.resourcesFor(gen.context(parseProxy(nodeId(i), { NAMESPACE: 'default', LABELS: { app: 'bench-client' } })));
    add('istioResourcesForAllMs', `"for all": context + resourcesFor for ${o.connections} connections (one class, shared view)`, ms(t));

    // One VirtualService edit: re-read, rebuild, regenerate the shared view.
    const edits: { reload: number; build: number; view: number }[] = [];
    for (let k = 0; k < 3; k++) {
      const i = (k * 97 + 13) % o.istio;
      writeAtomic(dir, istioFile(i), renderIstio(i, 80 - k));
      t = process.hrtime.bigint();
      files.reload();
      const reload = ms(t);
      t = process.hrtime.bigint();
      gen.update(buildSnapshot(store, DOMAIN, gen.snapshot));
      const build = ms(t);
      t = process.hrtime.bigint();
      gen.resourcesFor(gen.context(proxy));
      edits.push({ reload, build, view: ms(t) });
    }
    add('istioVsEditReloadMs', 'VirtualService edit: FileSource.reload (median of 3)', median(edits.map((e) => e.reload)));
    add('istioVsEditBuildMs', 'VirtualService edit: buildSnapshot + generator.update (median of 3)', median(edits.map((e) => e.build)));
    add('istioVsEditViewMs', 'VirtualService edit: resourcesFor, re-translate one class (median of 3)', median(edits.map((e) => e.view)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
