// Plugged-in CA material from a directory in Istio's `cacerts` layout.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RootOfTrustError } from './errors.js';
import type { CaMaterial } from './root-of-trust.js';

export const CA_CERT_FILE = 'ca-cert.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';
export const CERT_CHAIN_FILE = 'cert-chain.pem';

/** Reads ca-cert.pem and ca-key.pem (required), root-cert.pem and cert-chain.pem (optional) from `dir`. */
export function readCaDirectory(dir: string): CaMaterial {
  const read = (name: string, required: boolean): string | undefined => {
    const path = join(dir, name);
    if (!existsSync(path)) {
      if (required) throw new RootOfTrustError(`--ca-cert-dir ${dir}: ${name} is missing (expected ${CA_CERT_FILE}, ${CA_KEY_FILE}, ${ROOT_CERT_FILE}, ${CERT_CHAIN_FILE})`);
      return undefined;
    }
    return readFileSync(path, 'utf8');
  };
  return {
    caCertPem: read(CA_CERT_FILE, true)!,
    caKeyPem: read(CA_KEY_FILE, true)!,
    rootCertPem: read(ROOT_CERT_FILE, false),
    certChainPem: read(CERT_CHAIN_FILE, false),
  };
}
