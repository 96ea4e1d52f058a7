// Prometheus metrics under Istio's names, so existing istiod dashboards find them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// The definitions below repeat one shape on purpose: each metric is declared in full (name,
// help, labels, buckets) where it can be read and grepped, rather than built by a helper.
export class Metrics {
  readonly registry = new Registry();

  readonly xdsClients = new Gauge({ name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS.', labelNames: ['version'], registers: [this.registry] });
  readonly xdsPushes = new Counter({ name: 'pilot_xds_pushes', help: 'Pilot build and send errors for lds, rds, cds and eds.', labelNames: ['type'], registers: [this.registry] });
  readonly xdsPushTime = new Histogram({
    name: 'pilot_xds_push_time',
    help: 'Total time in seconds Pilot takes to push lds, rds, cds and eds.',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 5, 10, 20, 30],
    registers: [this.registry],
  });
  readonly xdsSendTime = new Histogram({
    name: 'pilot_xds_send_time',
    help: 'Total time in seconds Pilot takes to send generated configuration.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 5],
    registers: [this.registry],
  });
  readonly proxyConvergenceTime = new Histogram({
    name: 'pilot_proxy_convergence_time',
    help: 'Delay in seconds between config change and a proxy receiving all required configuration.',
    buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
    registers: [this.registry],
  });
  readonly xdsRejects = new Counter({ name: 'pilot_total_xds_rejects', help: 'Total number of XDS responses from pilot rejected by proxy.', labelNames: ['type'], registers: [this.registry] });
  readonly xdsConfigSize = new Histogram({
    name: 'pilot_xds_config_size_bytes',
    help: 'Distribution of configuration sizes pushed to clients',
    labelNames: ['type'],
    buckets: [1, 10000, 1000000, 4000000, 10000000, 40000000],
    registers: [this.registry],
  });
  readonly services = new Gauge({ name: 'pilot_services', help: 'Total services known to pilot.', registers: [this.registry] });
  readonly debounceTime = new Histogram({
    name: 'pilot_debounce_time',
    help: 'Delay in seconds between the first config enters debouncing and the merged push request is pushed into the push queue.',
    buckets: [0.01, 0.1, 0.5, 1, 3, 5, 10, 20],
    registers: [this.registry],
  });
  readonly inboundUpdates = new Counter({ name: 'pilot_inbound_updates', help: 'Total number of updates received by pilot.', labelNames: ['type'], registers: [this.registry] });
  readonly pushTriggers = new Counter({ name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push.', labelNames: ['type'], registers: [this.registry] });
  readonly expiredNonce = new Counter({ name: 'pilot_xds_expired_nonce', help: 'Total number of XDS requests with an expired nonce.', labelNames: ['type'], registers: [this.registry] });
  readonly k8sRegistryEvents = new Counter({ name: 'pilot_k8s_reg_events', help: 'Events from k8s registry.', labelNames: ['type', 'event'], registers: [this.registry] });
  readonly k8sConfigEvents = new Counter({ name: 'pilot_k8s_cfg_events', help: 'Events from k8s config.', labelNames: ['type', 'event'], registers: [this.registry] });
  readonly informerSynced = new Gauge({ name: 'meshd_informer_synced', help: 'Whether the informer for a kind has listed (1) or not yet (0).', labelNames: ['kind'], registers: [this.registry] });
  readonly informerRestarts = new Counter({ name: 'meshd_informer_restarts_total', help: 'Informer failures followed by a relist, by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly configErrors = new Counter({ name: 'meshd_config_errors_total', help: 'Objects rejected by validation, by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly statusWrites = new Counter({ name: 'meshd_status_writes_total', help: 'Status computed for Istio objects, by kind and result: written, unchanged (already held, not written), failed, gone (deleted meanwhile).', labelNames: ['kind', 'result'], registers: [this.registry] });
  // Hardening: what hostile or stuck clients were refused or cut off.
  readonly secretRefusals = new Counter({ name: 'meshd_sds_refusals_total', help: 'Secrets withheld from a proxy (sent empty) because its stream has no verified identity allowed to read them, by reason.', labelNames: ['reason'], registers: [this.registry] });
  readonly stalledStreams = new Counter({ name: 'meshd_xds_stalled_streams_total', help: 'xDS streams detached because their writes did not drain within the send timeout.', registers: [this.registry] });
  readonly stalledStreamsClosed = new Counter({ name: 'meshd_xds_stalled_streams_closed_total', help: 'Stalled xDS streams closed after the grace period.', registers: [this.registry] });
  readonly streamsRefused = new Counter({ name: 'meshd_xds_streams_refused_total', help: 'xDS streams refused before their first response, by reason.', labelNames: ['reason'], registers: [this.registry] });
  readonly pushRetries = new Counter({ name: 'meshd_xds_push_retries_total', help: 'Pushes to a proxy that failed and were scheduled again.', registers: [this.registry] });
  readonly admissionQueue = new Gauge({ name: 'meshd_xds_admission_queue', help: 'New xDS streams waiting to be admitted (rate limit).', registers: [this.registry] });
  readonly drainedStreams = new Counter({ name: 'meshd_xds_drained_streams_total', help: 'xDS streams closed by meshd so proxies reconnect elsewhere (shutdown drain).', registers: [this.registry] });
  // Sidecar injection (Istio's names).
  readonly injectionRequests = new Counter({ name: 'sidecar_injection_requests_total', help: 'Total number of sidecar injection requests.', registers: [this.registry] });
  readonly injectionSuccesses = new Counter({ name: 'sidecar_injection_success_total', help: 'Total number of successful sidecar injection requests.', registers: [this.registry] });
  readonly injectionSkips = new Counter({ name: 'sidecar_injection_skip_total', help: 'Total number of skipped sidecar injection requests.', registers: [this.registry] });
  readonly injectionFailures = new Counter({ name: 'sidecar_injection_failure_total', help: 'Total number of failed sidecar injection requests.', registers: [this.registry] });
  // The validating webhook's configuration (the leader keeps it).
  readonly validationFailClosed = new Gauge({ name: 'meshd_validation_fail_closed', help: 'Whether this replica proved the validating webhook (a dry run of invalid config was refused by it) and keeps its failurePolicy at Fail (1) or not (0).', registers: [this.registry] });
  readonly validationFailurePolicyPatches = new Counter({ name: 'meshd_validation_failure_policy_patches_total', help: 'Writes that set failurePolicy Fail on the validating webhook configuration (the first after the proof, and each time a hand edit is put back), by configuration.', labelNames: ['configuration'], registers: [this.registry] });
  // The CA (Istio's citadel_server_* names).
  readonly caCsrCount = new Counter({ name: 'citadel_server_csr_count', help: 'Certificate signing requests received.', registers: [this.registry] });
  readonly caIssued = new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'Certificates issued.', registers: [this.registry] });
  readonly caAuthFailures = new Counter({ name: 'citadel_server_authentication_failure_count', help: 'Certificate requests whose caller could not be authenticated.', registers: [this.registry] });
  readonly caCsrParseErrors = new Counter({ name: 'citadel_server_csr_parsing_err_count', help: 'Certificate requests whose CSR could not be parsed or verified.', registers: [this.registry] });
  readonly caSignErrors = new Counter({ name: 'citadel_server_csr_sign_err_count', help: 'Certificate requests refused or failed after parsing, by error.', labelNames: ['error'], registers: [this.registry] });
  readonly caRootExpiry = new Gauge({ name: 'citadel_server_root_cert_expiry_timestamp', help: 'When the root certificate expires (Unix seconds).', registers: [this.registry] });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
