// The core of a control plane: the store, the generator, the ADS server and the push
// controller that feeds it, and the metrics they report.
import { ConfigStore } from '../model/store.js';
import { ConfigGenerator } from '../xds/generator.js';
import { AdsServer } from '../xds/ads-server.js';
import { PushController } from '../xds/push-controller.js';
import { Metrics } from '../util/metrics.js';
import type { ControlPlaneOptions } from './options.js';

export interface Core {
  metrics: Metrics;
  store: ConfigStore;
  generator: ConfigGenerator;
  ads: AdsServer;
  pushes: PushController;
  stop(): void;
}

export function startCore(o: ControlPlaneOptions): Core {
  const metrics = new Metrics();
  const store = new ConfigStore();
  const generator = new ConfigGenerator();
  const ads = new AdsServer({
    generator,
    metrics,
    log: o.log.child({ component: 'ads' }),
    pushConcurrency: o.pushConcurrency ?? 20,
    sendTimeoutMs: o.xds?.sendTimeoutMs,
    stallGraceMs: o.xds?.stallGraceMs,
    pushSlotTimeoutMs: o.xds?.pushSlotTimeoutMs,
    admissionRate: o.xds?.admissionRate ?? 500,
    admissionQueue: o.xds?.admissionQueue,
    maxMetadataBytes: o.xds?.maxMetadataBytes,
    vhds: o.xds?.vhds ?? true,
  });
  const pushes = new PushController({
    store,
    generator,
    domain: o.domain,
    debounceMs: o.debounceMs,
    debounceMaxMs: o.debounceMaxMs,
    debounceEndpointsMs: o.debounceEndpointsMs ?? o.debounceMs,
    push: (req) => ads.push(req),
    metrics,
    log: o.log.child({ component: 'push' }),
  });
  return {
    metrics,
    store,
    generator,
    ads,
    pushes,
    stop() {
      pushes.stop();
      ads.closeAll();
    },
  };
}
