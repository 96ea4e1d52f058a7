// Who is calling: the Authenticator turns the `authorization` header of a request into the
// caller's Kubernetes identity (namespace and service account), or refuses it with a gRPC
// status. Shared by Istio's CA API and, later, SDS.
import { status as GrpcStatus } from '@grpc/grpc-js';

export interface CallerIdentity {
  namespace: string;
  serviceAccount: string;
}

export interface Authenticator {
  /** Resolves to the caller's identity; rejects with AuthenticationError. */
  authenticate(authorizationHeader: string | undefined): Promise<CallerIdentity>;
}

export class AuthenticationError extends Error {
  constructor(
    readonly grpcStatus: GrpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

const unauthenticated = (message: string): AuthenticationError => new AuthenticationError(GrpcStatus.UNAUTHENTICATED, message);

/** The token of an `authorization: Bearer <token>` header; throws UNAUTHENTICATED when there is none. */
export function bearerToken(authorizationHeader: string | undefined): string {
  if (authorizationHeader === undefined || authorizationHeader.trim() === '') throw unauthenticated('no authorization header: send "authorization: Bearer <service account token>"');
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorizationHeader);
  if (!m) throw unauthenticated('the authorization header is not "Bearer <token>"');
  return m[1]!;
}

/** `system:serviceaccount:<ns>:<sa>` as a CallerIdentity; undefined for other usernames. */
export function serviceAccountOf(username: string): CallerIdentity | undefined {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  return m ? { namespace: m[1]!, serviceAccount: m[2]! } : undefined;
}

/** Used when meshd has no Kubernetes API to review tokens with (--config-dir without a kubeconfig). */
export class NoTokenReviewAuthenticator implements Authenticator {
  async authenticate(authorizationHeader: string | undefined): Promise<CallerIdentity> {
    bearerToken(authorizationHeader);
    throw unauthenticated('meshd cannot authenticate callers: it runs from --config-dir with no Kubernetes API to review tokens (set KUBECONFIG, or run with --kubeconfig)');
  }
}

export { unauthenticated };
