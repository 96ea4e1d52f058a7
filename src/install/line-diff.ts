// A unified diff of two texts, line by line (longest common subsequence), for
// `meshd profile diff`: hunks with `context` unchanged lines around each change.

const MAX_LINES = 20_000;

type Op = { tag: ' ' | '-' | '+'; line: string; a: number; b: number };

function ops(a: string[], b: string[]): Op[] {
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
  const lcs: Uint32Array[] = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const out: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) out.push({ tag: ' ', line: a[i]!, a: i++, b: j++ });
    else if (i < a.length && (j === b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) out.push({ tag: '-', line: a[i]!, a: i++, b: j });
    else out.push({ tag: '+', line: b[j]!, a: i, b: j++ });
  }
  return out;
}

/** The unified diff of `a` and `b` ("" when they are the same). */
export function unifiedDiff(a: string, b: string, nameA: string, nameB: string, context = 3): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  if (la.length > MAX_LINES || lb.length > MAX_LINES) throw new Error(`texts of more than ${MAX_LINES} lines are not diffed`);
  const all = ops(la, lb);
  const changed = all.map((o, k) => (o.tag !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (changed.length === 0) return '';
  const lines = [`--- ${nameA}`, `+++ ${nameB}`];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = Math.min(all.length, changed[k]! + context + 1);
    while (k + 1 < changed.length && changed[k + 1]! - context <= end) {
      k += 1;
      end = Math.min(all.length, changed[k]! + context + 1);
    }
    const hunk = all.slice(start, end);
    const aLen = hunk.filter((o) => o.tag !== '+').length;
    const bLen = hunk.filter((o) => o.tag !== '-').length;
    lines.push(`@@ -${hunk[0]!.a + 1},${aLen} +${hunk[0]!.b + 1},${bLen} @@`);
    for (const o of hunk) lines.push(`${o.tag}${o.line}`);
    k += 1;
  }
  return `${lines.join('\n')}\n`;
}
