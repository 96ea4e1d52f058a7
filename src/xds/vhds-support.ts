// Which clients take virtual hosts over VHDS. Envoy accepts a route configuration whose
// `vhds` config source is ADS only since early 2026 (envoyproxy/envoy#42812: before it,
// such a route configuration is rejected, "vhds: only 'DELTA_GRPC' is supported as an
// api_type"), and only on a delta ADS stream. meshd offers VHDS to an Envoy that says it is
// at least 1.38 (`user_agent_build_version`); any other client keeps whole route configurations.

/** The first Envoy release meshd offers VHDS over ADS to (tested with 1.40.0). */
export const VHDS_MIN_ENVOY: readonly [number, number] = [1, 38];

interface SemanticVersion {
  major_number?: number;
  minor_number?: number;
}

/** The node fields that say which client this is. */
export interface ClientNode {
  user_agent_name?: string;
  user_agent_build_version?: { version?: SemanticVersion } | null;
}

/** Whether this client is an Envoy recent enough for VHDS over (delta) ADS. */
export function supportsVhdsOverAds(node: ClientNode | undefined): boolean {
  if (node?.user_agent_name !== 'envoy') return false;
  const v = node.user_agent_build_version?.version;
  if (!v) return false;
  const major = Number(v.major_number ?? 0);
  const minor = Number(v.minor_number ?? 0);
  return major > VHDS_MIN_ENVOY[0] || (major === VHDS_MIN_ENVOY[0] && minor >= VHDS_MIN_ENVOY[1]);
}
