// Loads protos/istio-ca.proto (meshd's own copy of Istio's CA API) with protobufjs and
// offers the gRPC method definition with its codecs.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { rawMethod } from '../util/raw-grpc.js';

/** dist/src/ca -> the repository (or image) root, which holds protos/. */
export const ISTIO_CA_PROTO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'protos', 'istio-ca.proto');
export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;

export interface IstioCertificateRequest {
  csr: string;
  /** Seconds; 0 when absent. */
  validity_duration: number;
  metadata?: Record<string, unknown> | null;
}

export interface IstioCertificateResponse {
  cert_chain: string[];
}

let root: protobuf.Root | undefined;

export function istioCaRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  // google/protobuf/struct.proto is one of protobufjs' built-in common files.
  r.resolvePath = (origin: string, target: string): string | null => (target.startsWith('google/protobuf/') && target in protobuf.common ? target : protobuf.util.path.resolve(origin, target));
  r.loadSync(ISTIO_CA_PROTO, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export const requestType = (): protobuf.Type => istioCaRoot().lookupType('istio.v1.auth.IstioCertificateRequest');
export const responseType = (): protobuf.Type => istioCaRoot().lookupType('istio.v1.auth.IstioCertificateResponse');

export function decodeRequest(bytes: Uint8Array): IstioCertificateRequest {
  const t = requestType();
  return t.toObject(t.decode(bytes), { longs: Number, defaults: true }) as IstioCertificateRequest;
}

export function encodeRequest(req: Partial<IstioCertificateRequest>): Buffer {
  const t = requestType();
  return Buffer.from(t.encode(t.fromObject(req)).finish());
}

export function encodeResponse(res: IstioCertificateResponse): Buffer {
  const t = responseType();
  return Buffer.from(t.encode(t.fromObject(res)).finish());
}

/**
 * The service definition with raw bytes in and out: the handler decodes the request itself,
 * so that a message that is not a valid request is answered INVALID_ARGUMENT.
 */
export const CA_SERVICE_DEFINITION: grpc.ServiceDefinition = {
  CreateCertificate: rawMethod(CREATE_CERTIFICATE_PATH, { request: false, response: false }),
};
