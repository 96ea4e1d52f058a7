// Immutability checks for shared translation output, on in tests (MESHD_FREEZE_TRANSLATIONS=1):
// resources shared between proxies and config versions are frozen, so code that changes one
// after the fact throws instead of corrupting what other proxies are sent.

const ON = process.env.MESHD_FREEZE_TRANSLATIONS === '1';

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
}

/** Freezes `value` deeply when the checks are on; a no-op in production. */
export function freezeShared(value: unknown): void {
  if (ON) deepFreeze(value);
}
