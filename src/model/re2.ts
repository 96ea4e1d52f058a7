// Regular expressions as Envoy's RE2 reads them (JavaScript's RegExp accepts things
// RE2 rejects, such as lookahead and backreferences), checked with Google's RE2
// compiled to WebAssembly.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
type Re2Constructor = new (pattern: string, flags: string) => unknown;
let RE2: Re2Constructor | undefined;

/** Undefined when `pattern` is valid RE2, otherwise RE2's complaint. */
export function re2Error(pattern: string): string | undefined {
  RE2 ??= (require('re2-wasm') as { RE2: Re2Constructor }).RE2;
  try {
    new RE2(pattern, 'u');
    return undefined;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // "Invalid regular expression: /x/u: <reason>" -> "<reason>"
    return message.replace(/^Invalid regular expression: \/.*\/u: /s, '');
  }
}
