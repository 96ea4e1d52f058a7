// Mutual TLS between sidecars, as Istio sets it up: certificates come over SDS (`default`,
// the workload's key and certificate, and `ROOTCA`, the mesh's root) from meshd on the ADS
// stream, or from Istio's agent in the pod (`sds-grpc`); clients verify the server's SPIFFE
// identity, and servers take TLS or plaintext per PeerAuthentication.
import type { Labels } from '../model/labels.js';
import type { WorkloadCertificates } from '../model/proxy.js';
import { ADS_CONFIG_SOURCE } from './filters.js';
import { anyOf, type EnvoyResource, type Json } from './types.js';
import { spiffeId } from '../model/spiffe.js';

export const WORKLOAD_SECRET = 'default';
export const ROOT_CA_SECRET = 'ROOTCA';
/** The Pod label (set by sidecar injection) saying the workload accepts Istio mTLS. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
/** Endpoint metadata that transport_socket_matches look at. */
export const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';

const UPSTREAM_TLS = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/**
 * ALPN values a sidecar offers on mesh mTLS, as Istio's do: the server's sidecar tells mesh
 * mTLS (which it terminates) from an app's own TLS (which it passes through) by them.
 */
export const MESH_ALPN = ['istio', 'istio-peer-exchange', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'];

/** What a client sidecar offers for a port's protocol. */
export function meshAlpn(protocol: 'http' | 'http2' | 'tcp'): string[] {
  return protocol === 'http2' ? ['istio-h2', 'istio'] : protocol === 'http' ? ['istio-http/1.1', 'istio'] : ['istio'];
}
const DOWNSTREAM_TLS = 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** The cluster Istio's agent bootstrap defines for its SDS server (a Unix socket in the pod). */
export const AGENT_SDS_CLUSTER = 'sds-grpc';

const AGENT_SDS_SOURCE: Json = {
  api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: AGENT_SDS_CLUSTER } }], set_node_on_first_message_only: true },
  resource_api_version: 'V3',
};

function sdsSecret(name: string, certs: WorkloadCertificates): Json {
  return { name, sds_config: certs.source === 'agent' ? AGENT_SDS_SOURCE : ADS_CONFIG_SOURCE };
}

/** The certificate and trust settings both sides share; `peers` are the SPIFFE ids accepted from the other side. */
function commonTlsContext(certs: WorkloadCertificates, peers: Json[], alpn: string[]): Json {
  return {
    tls_certificate_sds_secret_configs: [sdsSecret(WORKLOAD_SECRET, certs)],
    combined_validation_context: {
      default_validation_context: { match_typed_subject_alt_names: peers },
      validation_context_sds_secret_config: sdsSecret(ROOT_CA_SECRET, certs),
    },
    alpn_protocols: alpn,
  };
}

/**
 * Istio's SNI for a mesh cluster, `outbound_.<port>_.<subset>_.<host>`. `serviceAccounts`
 * are `namespace/name` pairs; with none known, any identity of the trust domain is accepted.
 */
export function istioMutualSocket(o: { certificates: WorkloadCertificates; port: number; subset?: string; hostname: string; serviceAccounts: readonly string[]; alpn: string[]; subjectAltNames?: readonly string[] | undefined }): Json {
  // A ServiceEntry's subjectAltNames, when given, are the identities accepted instead.
  const peers = o.subjectAltNames?.length
    ? o.subjectAltNames.map((san) => ({ san_type: 'URI', matcher: { exact: san } }))
    : o.serviceAccounts.length
    ? o.serviceAccounts.map((nsSa) => {
        const [ns, sa] = nsSa.split('/') as [string, string];
        return { san_type: 'URI', matcher: { exact: spiffeId(o.certificates.trustDomain, ns, sa) } };
      })
    : [{ san_type: 'URI', matcher: { prefix: `spiffe://${o.certificates.trustDomain}/` } }];
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: anyOf(UPSTREAM_TLS, {
      common_tls_context: commonTlsContext(o.certificates, peers, o.alpn),
      sni: `outbound_.${o.port}_.${o.subset ?? ''}_.${o.hostname}`,
    }),
  };
}

/** Auto mTLS: endpoints labelled `security.istio.io/tlsMode: istio` get mTLS, the others plaintext. */
export function autoMtlsSocketMatches(istioMutual: Json): Json[] {
  return [
    { name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transport_socket: istioMutual },
    { name: 'tlsMode-disabled', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: anyOf('envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', {}) } },
  ];
}

/** Endpoint metadata for transport_socket_matches, from the Pod's labels. */
export function endpointTlsMetadata(labels: Labels): Json | undefined {
  return labels[TLS_MODE_LABEL] === 'istio' ? { filter_metadata: { [TRANSPORT_SOCKET_MATCH]: { tlsMode: 'istio' } } } : undefined;
}

/** The server side of mesh mTLS: a client certificate from the trust domain is required. */
export function istioMutualServerSocket(certs: WorkloadCertificates): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: anyOf(DOWNSTREAM_TLS, {
      // The HTTP codec tells HTTP/1.1 from HTTP/2 by the preface; no ALPN is negotiated.
      common_tls_context: commonTlsContext(certs, [{ san_type: 'URI', matcher: { prefix: `spiffe://${certs.trustDomain}/` } }], []),
      require_client_certificate: true,
    }),
  };
}


/** SDS `default`: the workload's certificate chain (leaf first) and private key. */
export function workloadSecret(certChainPem: readonly string[], privateKeyPem: string): EnvoyResource {
  const chain = certChainPem.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
  return { name: WORKLOAD_SECRET, body: { name: WORKLOAD_SECRET, tls_certificate: { certificate_chain: { inline_string: chain }, private_key: { inline_string: privateKeyPem } } } };
}

/** SDS `ROOTCA`: the roots workloads trust. */
export function rootCaSecret(rootPem: string): EnvoyResource {
  return { name: ROOT_CA_SECRET, body: { name: ROOT_CA_SECRET, validation_context: { trusted_ca: { inline_string: rootPem } } } };
}
