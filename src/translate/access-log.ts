// Access logs as Istio configures them from the mesh config: Envoy's file access logger at
// `accessLogFile`, in Istio's default TEXT format or JSON fields unless `accessLogFormat` says
// otherwise, on every HTTP connection manager and TCP proxy; and, on listeners, one that logs
// only connections no filter chain took (response flag NR). Nothing when accessLogFile is empty.
import type { MeshConfig } from '../model/mesh-config.js';
import { anyOf, type Json } from './types.js';

/** Istio's default TEXT access log format (Istio 1.9 onwards). */
export const ISTIO_TEXT_LOG_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON access log fields, in key order. */
export const ISTIO_JSON_LOG_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  authority: '%REQ(:AUTHORITY)%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  duration: '%DURATION%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  request_id: '%REQ(X-REQUEST-ID)%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  response_code: '%RESPONSE_CODE%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  response_flags: '%RESPONSE_FLAGS%',
  route_name: '%ROUTE_NAME%',
  start_time: '%START_TIME%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  user_agent: '%REQ(USER-AGENT)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
});

export interface AccessLogs {
  /** For HTTP connection managers and TCP proxies; undefined when access logs are off. */
  filter: Json[] | undefined;
  /** For listeners: only connections no filter chain matched (NR); undefined when off. */
  listener: Json[] | undefined;
}

/** The log format the mesh config asks for (accessLogEncoding, accessLogFormat); Istio's built-in `envoy` provider uses it too. */
export function meshLogFormat(mesh: MeshConfig): Json {
  const custom = mesh.accessLogFormat.trim() !== '';
  if (mesh.accessLogEncoding === 'JSON') {
    // The parser has checked a custom format is a JSON object.
    return { json_format: custom ? (JSON.parse(mesh.accessLogFormat) as Json) : { ...ISTIO_JSON_LOG_FIELDS } };
  }
  // Istio ends every TEXT format with a newline.
  const text = custom ? (mesh.accessLogFormat.endsWith('\n') ? mesh.accessLogFormat : `${mesh.accessLogFormat}\n`) : ISTIO_TEXT_LOG_FORMAT;
  return { text_format_source: { inline_string: text } };
}

const memo = new WeakMap<MeshConfig, AccessLogs>();

/** The access logs a mesh config asks for (computed once per mesh config). */
export function accessLogs(mesh: MeshConfig): AccessLogs {
  let out = memo.get(mesh);
  if (out) return out;
  if (mesh.accessLogFile === '') out = { filter: undefined, listener: undefined };
  else {
    const logger: Json = {
      name: 'envoy.access_loggers.file',
      typed_config: anyOf('envoy.extensions.access_loggers.file.v3.FileAccessLog', { path: mesh.accessLogFile, log_format: meshLogFormat(mesh) }),
    };
    out = {
      filter: [logger],
      listener: mesh.disableEnvoyListenerLog ? undefined : [{ ...logger, filter: { response_flag_filter: { flags: ['NR'] } } }],
    };
  }
  memo.set(mesh, out);
  return out;
}

/** `access_log` for a listener body, or nothing. */
export function listenerAccessLog(mesh: MeshConfig): Json {
  const l = accessLogs(mesh).listener;
  return l ? { access_log: l } : {};
}
