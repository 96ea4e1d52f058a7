// Protocol sniffing for ports that declare no protocol (model/protocol.ts: AUTO), with upstream
// Envoy only. A listener for such a port runs the HTTP inspector, which reports HTTP/1.1 or
// HTTP/2 (prior knowledge) as the connection's application protocol from its first bytes; a
// filter chain matching those takes HTTP through the connection manager and the rest goes to a
// TCP chain. Inside mesh mTLS the inspector sees only TLS, so the client tells the server:
// HTTP requests on sniffed listeners set the upstream ALPN to `istio-http/1.1` (filter state
// `envoy.network.application_protocols`, shared with the upstream connection), TCP keeps the
// cluster's `istio`, and the server's chains match on those, as they do for Istio's own clients.
import type { MeshConfig } from '../model/mesh-config.js';
import { protoDurationOf } from '../util/duration.js';
import { anyOf, type Json } from './types.js';

/** What the HTTP inspector reports for plaintext HTTP/1.x and HTTP/2 with prior knowledge. */
export const SNIFFED_HTTP_PROTOCOLS = ['http/1.0', 'http/1.1', 'h2c'];

/** The ALPN mesh clients offer for HTTP inside mTLS (Istio's values, and meshd's). */
export const MESH_HTTP_ALPN = ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'];

/** The ALPN mesh clients offer for TCP inside mTLS. */
export const MESH_TCP_ALPN = ['istio', 'istio-peer-exchange'];

export function httpInspector(): Json {
  return { name: 'envoy.filters.listener.http_inspector', typed_config: anyOf('envoy.extensions.filters.listener.http_inspector.v3.HttpInspector', {}) };
}

/**
 * How long a listener's inspectors wait for the client's first bytes (the mesh config's
 * protocolDetectionTimeout; 0s waits as long as it takes), after which the connection goes on
 * as plain TCP rather than being closed.
 */
export function detectionTimeout(mesh: MeshConfig): Json {
  return { listener_filters_timeout: protoDurationOf(mesh.protocolDetectionTimeout) ?? '0s', continue_on_listener_filters_timeout: true };
}

/** The HTTP filter that marks a sniffed HTTP request's upstream mTLS connection as HTTP (ALPN). */
export function meshHttpAlpnFilter(): Json {
  return {
    name: 'envoy.filters.http.set_filter_state',
    typed_config: anyOf('envoy.extensions.filters.http.set_filter_state.v3.Config', {
      on_request_headers: [
        {
          object_key: 'envoy.network.application_protocols',
          format_string: { text_format_source: { inline_string: 'istio-http/1.1' } },
          shared_with_upstream: 'ONCE',
        },
      ],
    }),
  };
}

/** Upstream HTTP options for a sniffed port: the request goes on in the protocol it came in. */
export function downstreamProtocolOptions(): Json {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyOf('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
      use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
    }),
  };
}
