// Durations as users write them (Istio and Go style: "100ms", "1.5s", "2m", "1h30m").

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

/** Parses a Go-style duration into milliseconds; returns undefined when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (s.length === 0) return undefined;
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = PART.lastIndex;
  }
  return total;
}

/** Formats milliseconds as a protobuf JSON Duration string ("1.5s"). */
export function msToProtoDuration(ms: number): string {
  const seconds = ms / 1000;
  return `${Number(seconds.toFixed(9))}s`;
}

/** A duration as Envoy's JSON writes it ("1.5s"), from Go-style text; undefined when absent or not a duration. */
export function protoDurationOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs(text);
  return ms === undefined ? undefined : msToProtoDuration(ms);
}
