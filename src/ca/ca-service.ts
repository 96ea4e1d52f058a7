// Istio's CA API, istio.v1.auth.IstioCertificateService/CreateCertificate: authenticate
// the caller's bearer token, sign its CSR for its own SPIFFE identity, answer the chain
// (leaf, intermediates, root). Refusals carry the gRPC status Istio's agents expect.
import * as grpc from '@grpc/grpc-js';
import type { Metrics } from '../util/metrics.js';
import type { Logger } from '../util/log.js';
import { AuthenticationError, type Authenticator } from './authenticate.js';
import type { CertificateAuthority } from './ca.js';
import { CaError } from './errors.js';
import { CA_SERVICE_DEFINITION, decodeRequest, encodeResponse, type IstioCertificateRequest } from './istio-ca-proto.js';

export const DEFAULT_MAX_CSR_BYTES = 64 * 1024;
/** Whole request (CSR plus metadata); beyond this the request is not even decoded. */
export const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024;

export interface CaServiceOptions {
  ca: CertificateAuthority;
  authenticator: Authenticator;
  metrics: Metrics;
  log: Logger;
  maxCsrBytes?: number;
  maxRequestBytes?: number;
}

/** A refusal: status and message for the caller. */
class Refusal extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export class CaService {
  constructor(private readonly o: CaServiceOptions) {
    o.metrics.caRootExpiry.set(Math.floor(o.ca.rootNotAfter.getTime() / 1000));
  }

  register(server: grpc.Server): void {
    server.addService(CA_SERVICE_DEFINITION, {
      CreateCertificate: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const auth = call.metadata.get('authorization')[0];
        this.createCertificate(call.request, typeof auth === 'string' ? auth : auth?.toString('utf8'), call.getPeer()).then(
          (chain) => callback(null, encodeResponse({ cert_chain: chain })),
          (err: unknown) => {
            const r = err instanceof Refusal ? err : new Refusal(grpc.status.INTERNAL, 'internal error');
            callback({ code: r.code, details: r.message });
          },
        );
      },
    });
  }

  /** The whole request path, minus gRPC: resolves to the chain or rejects with a Refusal. */
  async createCertificate(bytes: Buffer, authorization: string | undefined, peer = ''): Promise<string[]> {
    const { metrics, log } = this.o;
    metrics.caCsrCount.inc();
    const maxRequest = this.o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    if (bytes.length > maxRequest) {
      metrics.caCsrParseErrors.inc();
      throw new Refusal(grpc.status.RESOURCE_EXHAUSTED, `request of ${bytes.length} bytes is larger than the ${maxRequest} bytes allowed`);
    }
    let caller;
    try {
      caller = await this.o.authenticator.authenticate(authorization);
    } catch (err) {
      metrics.caAuthFailures.inc();
      const e = err instanceof AuthenticationError ? err : new AuthenticationError(grpc.status.UNAUTHENTICATED, 'authentication failed');
      log.info({ peer, reason: e.message }, 'certificate request refused: caller not authenticated');
      throw new Refusal(e.grpcStatus, e.message);
    }
    const identity = this.o.ca.spiffeId(caller.namespace, caller.serviceAccount);
    let req: IstioCertificateRequest;
    try {
      req = decodeRequest(bytes);
    } catch (err) {
      metrics.caCsrParseErrors.inc();
      throw new Refusal(grpc.status.INVALID_ARGUMENT, `not an IstioCertificateRequest: ${(err as Error).message}`);
    }
    const maxCsr = this.o.maxCsrBytes ?? DEFAULT_MAX_CSR_BYTES;
    if (Buffer.byteLength(req.csr) > maxCsr) {
      metrics.caCsrParseErrors.inc();
      throw new Refusal(grpc.status.INVALID_ARGUMENT, `csr of ${Buffer.byteLength(req.csr)} bytes is larger than the ${maxCsr} bytes allowed`);
    }
    if (req.csr.trim() === '') {
      metrics.caCsrParseErrors.inc();
      throw new Refusal(grpc.status.INVALID_ARGUMENT, 'csr is empty');
    }
    try {
      const chain = await this.o.ca.sign(req.csr, { identity, ttlSeconds: req.validity_duration });
      metrics.caIssued.inc();
      log.debug({ identity, peer, requestedTtlSeconds: req.validity_duration }, 'certificate issued');
      return chain;
    } catch (err) {
      if (!(err instanceof CaError)) {
        metrics.caSignErrors.inc({ error: 'SIGNING_FAILED' });
        log.error({ identity, err: String(err) }, 'signing failed');
        throw new Refusal(grpc.status.INTERNAL, 'signing failed');
      }
      if (err.code === 'MESHD_CA_CSR_INVALID') metrics.caCsrParseErrors.inc();
      else metrics.caSignErrors.inc({ error: err.code.replace(/^MESHD_CA_/, '') });
      log.info({ identity, peer, code: err.code, reason: err.message }, 'certificate request refused');
      throw new Refusal(err.grpcStatus, err.message);
    }
  }
}
