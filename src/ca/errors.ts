// The CA's typed errors. Each carries a stable code (searchable, used as a metric label)
// and the gRPC status a caller of Istio's CA API gets for it.
import { status as GrpcStatus } from '@grpc/grpc-js';

export type CaErrorCode =
  /** The CSR is not a well-formed, self-signed PKCS#10 request meshd supports. */
  | 'MESHD_CA_CSR_INVALID'
  /** The CSR asks for an identity other than the caller's. */
  | 'MESHD_CA_PERMISSION_DENIED'
  /** The requested lifetime is not a valid number of seconds. */
  | 'MESHD_CA_TTL_INVALID'
  /** Building or signing the certificate failed (a fault on meshd's side). */
  | 'MESHD_CA_SIGNING_FAILED'
  /** The root of trust could not be created or loaded (files, Secrets). */
  | 'MESHD_CA_ROOT_INVALID';

const GRPC_STATUS: Record<CaErrorCode, GrpcStatus> = {
  MESHD_CA_CSR_INVALID: GrpcStatus.INVALID_ARGUMENT,
  MESHD_CA_PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  MESHD_CA_TTL_INVALID: GrpcStatus.INVALID_ARGUMENT,
  MESHD_CA_SIGNING_FAILED: GrpcStatus.INTERNAL,
  MESHD_CA_ROOT_INVALID: GrpcStatus.FAILED_PRECONDITION,
};

export class CaError extends Error {
  readonly grpcStatus: GrpcStatus;
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
    this.grpcStatus = GRPC_STATUS[code];
  }
}

/** A CSR that cannot be parsed, is not self-signed correctly, or uses an unsupported key or algorithm. */
export class InvalidCsrError extends CaError {
  constructor(message: string) {
    super('MESHD_CA_CSR_INVALID', `invalid CSR: ${message}`);
    this.name = 'InvalidCsrError';
  }
}

/** A CSR for an identity the caller does not hold. */
export class PermissionDeniedError extends CaError {
  constructor(message: string) {
    super('MESHD_CA_PERMISSION_DENIED', message);
    this.name = 'PermissionDeniedError';
  }
}

/** Key material or certificates that do not form a usable CA. */
export class RootOfTrustError extends CaError {
  constructor(message: string) {
    super('MESHD_CA_ROOT_INVALID', message);
    this.name = 'RootOfTrustError';
  }
}
