// Authenticates service-account JWTs with the Kubernetes TokenReview API, as istiod does:
// the token must be valid for the CA's audience (default `istio-ca`) and belong to a
// service account. Successful reviews are cached briefly, by a hash of the token.
import { createHash } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { kubeRequest, type KubeConnection } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import { AuthenticationError, bearerToken, serviceAccountOf, unauthenticated, type Authenticator, type CallerIdentity } from './authenticate.js';

export const DEFAULT_TOKEN_AUDIENCE = 'istio-ca';

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; groups?: string[] };
  audiences?: string[];
  error?: string;
}

export interface TokenReviewAuthenticatorOptions {
  conn: KubeConnection;
  /** The audience tokens must carry (spec.audiences); default istio-ca. */
  audience?: string;
  log: Logger;
  /** Longest a successful review is reused; default 60 s (never beyond the token's exp). */
  cacheTtlMs?: number;
  /** Bound on cached reviews; default 10000. */
  cacheSize?: number;
  timeoutMs?: number;
  now?: () => number;
}

/** The `exp` claim of a JWT (seconds), read without verifying: it only shortens caching. */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

export class TokenReviewAuthenticator implements Authenticator {
  readonly audience: string;
  private readonly cache = new Map<string, { identity: CallerIdentity; expiresAt: number }>();
  private readonly now: () => number;
  /** Reviews sent to the API server (for tests and metrics). */
  reviews = 0;

  constructor(private readonly o: TokenReviewAuthenticatorOptions) {
    this.audience = o.audience ?? DEFAULT_TOKEN_AUDIENCE;
    this.now = o.now ?? Date.now;
  }

  async authenticate(authorizationHeader: string | undefined): Promise<CallerIdentity> {
    const token = bearerToken(authorizationHeader);
    const key = createHash('sha256').update(token).digest('base64url');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) return hit.identity;
    if (hit) this.cache.delete(key);

    const exp = jwtExpiry(token);
    if (exp !== undefined && exp * 1000 <= now) throw unauthenticated('the token has expired');
    let status: TokenReviewStatus;
    try {
      this.reviews++;
      const review = await kubeRequest<{ status?: TokenReviewStatus }>(
        this.o.conn,
        'POST',
        '/apis/authentication.k8s.io/v1/tokenreviews',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } },
        'application/json',
        this.o.timeoutMs ?? 10_000,
      );
      status = review.status ?? {};
    } catch (err) {
      // meshd could not ask: the caller may retry (another replica, or later).
      this.o.log.warn({ err: String(err), token: key.slice(0, 12) }, 'TokenReview failed');
      throw new AuthenticationError(GrpcStatus.UNAVAILABLE, 'meshd could not review the token with the Kubernetes API; retry later');
    }
    if (status.authenticated !== true) throw unauthenticated(`the token was not accepted by the Kubernetes API${status.error ? `: ${status.error}` : ''}`);
    if (!(status.audiences ?? []).includes(this.audience)) throw unauthenticated(`the token is not valid for audience "${this.audience}"`);
    const username = status.user?.username ?? '';
    const identity = serviceAccountOf(username);
    if (!identity) throw unauthenticated(`"${username}" is not a service account (system:serviceaccount:<namespace>:<name>)`);

    const ttl = this.o.cacheTtlMs ?? 60_000;
    const expiresAt = Math.min(now + ttl, exp !== undefined ? exp * 1000 : Infinity);
    if (this.cache.size >= (this.o.cacheSize ?? 10_000)) this.evict(now);
    this.cache.set(key, { identity, expiresAt });
    return identity;
  }

  private evict(now: number): void {
    for (const [k, v] of this.cache) if (v.expiresAt <= now) this.cache.delete(k);
    // Still full: drop the oldest entries (Map keeps insertion order).
    const max = this.o.cacheSize ?? 10_000;
    for (const k of this.cache.keys()) {
      if (this.cache.size < max) break;
      this.cache.delete(k);
    }
  }
}
