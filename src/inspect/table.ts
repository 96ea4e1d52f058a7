// Tables as istioctl prints them (Go's text/tabwriter with padding 5 and spaces): every
// column but the last is padded to its widest cell plus the padding.

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], padding = 5): string {
  const all = [header, ...rows];
  const widths: number[] = [];
  for (const row of all) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return all
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - [...cell].length + padding))).join(''))
    .map((line) => `${line}\n`)
    .join('');
}
