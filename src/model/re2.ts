// Regular expressions as Envoy's RE2 reads them (JavaScript's RegExp accepts things
// RE2 rejects, such as lookahead and backreferences), checked with Google's RE2
// compiled to WebAssembly, plus the one RE2 check that WebAssembly build cannot make:
// the size of the compiled program.
//
// Envoy refuses a regex whose RE2 program has more instructions than the runtime key
// `re2.max_program_size.error_level` allows (100 by default), and with it the whole
// RouteConfiguration (or Listener) that holds it. The bootstraps meshd writes raise the
// limit to RE2_MAX_PROGRAM_SIZE, as Istio's do, and validation checks every regex
// against that same limit.
//
// re2-wasm exposes no ProgramSize(), and it compiles in UTF-8 mode while Envoy's RE2
// compiles in Latin-1 mode (a pattern's bytes are its characters: `.` is one byte,
// `\x{100}` is an error). So the program size is computed here by following RE2's own
// pipeline for Latin-1: parse (literal strings, case folding, factoring of common
// prefixes out of alternations), simplify (counted repetition expanded), compile into
// instructions, and flatten, whose instruction count is what RE2::ProgramSize() returns.
// test/unit/hardening-validation.test.ts checks the result against a real Envoy.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
interface WrappedRE2 {
  ok(): boolean;
  error(): string;
  delete(): void;
}
type WrappedRE2Constructor = new (pattern: string, ignoreCase: boolean, multiline: boolean, dotAll: boolean) => WrappedRE2;
let WrappedRE2: WrappedRE2Constructor | undefined;

/**
 * The largest RE2 program (in instructions) a regex may compile to: the value of Envoy's
 * runtime key `re2.max_program_size.error_level` in every bootstrap meshd writes (Istio's
 * value; Envoy's own default is 100).
 */
export const RE2_MAX_PROGRAM_SIZE = 32768;

/**
 * Undefined when `pattern` is valid RE2, otherwise RE2's complaint.
 *
 * The pattern goes to RE2 as it is, not through re2-wasm's RegExp-style front end (which
 * rewrites JavaScript escapes such as `\u0041` that Envoy rejects, and rejects duplicate
 * group names that Envoy accepts). Each compiled RE2 object is freed: the WebAssembly heap is
 * fixed and would run out. Then the Latin-1 model below catches what only Envoy's encoding
 * rejects (`\x{100}`, `\777`).
 */
export function re2Error(pattern: string): string | undefined {
  const wasm = wasmRe2Error(pattern);
  if (typeof wasm === 'string') return wasm;
  const size = re2ProgramSize(pattern);
  return typeof size === 'string' ? size : undefined;
}

const OUT_OF_MEMORY = Symbol('re2 out of memory');
const RE2_MODULE = 're2-wasm/build/wasm/re2.js';

/**
 * RE2 (WebAssembly)'s complaint about `pattern`, or OUT_OF_MEMORY. Its heap is fixed at
 * 16 MiB and a few hundred characters can exhaust it (`\pL` a hundred times: in UTF-8 each is
 * a large class). That aborts the module for good, so the instance is dropped and the next
 * call loads a fresh one; this pattern is then judged by the Latin-1 model alone (its parser
 * follows RE2's), so one pattern never turns every later check into an error.
 */
function wasmRe2Error(pattern: string): string | undefined | typeof OUT_OF_MEMORY {
  WrappedRE2 ??= (require(RE2_MODULE) as { WrappedRE2: WrappedRE2Constructor }).WrappedRE2;
  let re: WrappedRE2;
  try {
    // This RE2 build predates `(?<name>`, which Envoy's RE2 reads as `(?P<name>`.
    re = new WrappedRE2(pattern.replace(/(^|[^\\])((?:\\\\)*)\(\?<(?![=!])/g, '$1$2(?P<'), false, false, false);
  } catch {
    Reflect.deleteProperty(require.cache, require.resolve(RE2_MODULE));
    WrappedRE2 = undefined;
    return OUT_OF_MEMORY;
  }
  try {
    return re.ok() ? undefined : re.error();
  } finally {
    re.delete();
  }
}

/**
 * Undefined when Envoy accepts `pattern`: valid RE2 whose program fits in `limit`
 * instructions. Otherwise what is wrong; for a program too large, with its size and the limit.
 */
export function re2Issue(pattern: string, limit = RE2_MAX_PROGRAM_SIZE): string | undefined {
  const err = re2Error(pattern);
  if (err) return `is not a valid RE2 regular expression (${err}); Envoy uses RE2: no lookaround or backreferences`;
  const size = re2ProgramSize(pattern);
  if (typeof size === 'number' && size > limit) {
    return `compiles to an RE2 program of size ${size}, over the limit of ${limit} that Envoy enforces (runtime key re2.max_program_size.error_level); use fewer or smaller counted repetitions`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The program-size model. Names follow RE2's (Regexp ops, parse flags, instructions) so the
// code can be read side by side with RE2's description of its own algorithm.

class Re2SyntaxError extends Error {}

// Parse flags (RE2's values; only their equality matters here).
const FOLD_CASE = 1 << 0;
const CLASS_NL = 1 << 2;
const DOT_NL = 1 << 3;
const ONE_LINE = 1 << 4;
const LATIN1 = 1 << 5;
const NON_GREEDY = 1 << 6;
const PERL_CLASSES = 1 << 7;
const PERL_B = 1 << 8;
const PERL_X = 1 << 9;
const UNICODE_GROUPS = 1 << 10;
const WAS_DOLLAR = 1 << 13;
/** RE2::Options' defaults (like Perl) in Latin-1, as Envoy compiles. */
const ENVOY_FLAGS = CLASS_NL | ONE_LINE | PERL_CLASSES | PERL_B | PERL_X | UNICODE_GROUPS | LATIN1;

const enum Op {
  NoMatch = 1,
  EmptyMatch,
  Literal,
  LiteralString,
  Concat,
  Alternate,
  Star,
  Plus,
  Quest,
  Repeat,
  Capture,
  AnyChar,
  AnyByte,
  BeginLine,
  EndLine,
  WordBoundary,
  NoWordBoundary,
  BeginText,
  EndText,
  CharClass,
  // parser stack markers
  LeftParen,
  VerticalBar,
}

type Range = [number, number];
const RUNE_MAX = 0x10ffff;

interface Re {
  op: Op;
  flags: number;
  rune: number;
  runes: number[];
  subs: Re[];
  min: number;
  max: number;
  cap: number;
  cc: Range[];
  /** A character class still being built by the parser (RE2's CharClassBuilder). */
  building: boolean;
  down: Re | undefined;
}

function node(op: Op, flags: number, init: Partial<Re> = {}): Re {
  return { op, flags, rune: 0, runes: [], subs: [], min: 0, max: 0, cap: 0, cc: [], building: false, down: undefined, ...init };
}

// --- character classes: sorted, disjoint, non-adjacent ranges ---------------------------------

function ccAdd(cc: Range[], lo: number, hi: number): Range[] {
  if (hi < lo) return cc;
  const out: Range[] = [];
  let placed = false;
  for (const [a, b] of cc) {
    if (b + 1 < lo) out.push([a, b]);
    else if (hi + 1 < a) {
      if (!placed) out.push([lo, hi]);
      placed = true;
      out.push([a, b]);
    } else {
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
  }
  if (!placed) out.push([lo, hi]);
  return out.sort((x, y) => x[0] - y[0]);
}

function ccNegate(cc: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [a, b] of cc) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= RUNE_MAX) out.push([next, RUNE_MAX]);
  return out;
}

function ccRemoveAbove(cc: Range[], max: number): Range[] {
  return cc.filter(([a]) => a <= max).map(([a, b]): Range => [a, Math.min(b, max)]);
}

function ccContains(cc: Range[], r: number): boolean {
  return cc.some(([a, b]) => a <= r && r <= b);
}

function ccSize(cc: Range[]): number {
  return cc.reduce((n, [a, b]) => n + b - a + 1, 0);
}

function ccEqual(a: Range[], b: Range[]): boolean {
  return a.length === b.length && a.every((r, i) => r[0] === b[i]![0] && r[1] === b[i]![1]);
}

/** Does the class behave the same on A-Z as on a-z? */
function ccFoldsAscii(cc: Range[]): boolean {
  for (let i = 0; i < 26; i++) if (ccContains(cc, 0x41 + i) !== ccContains(cc, 0x61 + i)) return false;
  return true;
}

// Case folding. In Latin-1 mode RE2 folds ASCII letters only (checked against Envoy:
// `(?i)\x{e9}` does not match \x{c9}).
const FOLD_ORBITS: number[][] = Array.from({ length: 26 }, (_, i) => [0x41 + i, 0x61 + i]);
const ORBIT_OF = new Map<number, number[]>(FOLD_ORBITS.flatMap((o) => o.map((r): [number, number[]] => [r, o])));

/** Whether r has other case forms (RE2's CycleFoldRune(r) != r), for a Latin-1 rune. */
function hasFold(r: number): boolean {
  return ORBIT_OF.has(r);
}

/** Adds lo-hi and everything that folds to it (as far as Latin-1 can tell). */
function ccAddFolded(cc: Range[], lo: number, hi: number): Range[] {
  cc = ccAdd(cc, lo, hi);
  for (const orbit of FOLD_ORBITS) {
    if (orbit.some((r) => lo <= r && r <= hi)) for (const r of orbit) cc = ccAdd(cc, r, r);
  }
  return cc;
}

function ccAddFlags(cc: Range[], lo: number, hi: number, flags: number): Range[] {
  return flags & FOLD_CASE ? ccAddFolded(cc, lo, hi) : ccAdd(cc, lo, hi);
}

// Character groups (only their Latin-1 members, and runes folding into Latin-1, matter).
const PERL_GROUPS: Record<string, Range[]> = {
  d: [[0x30, 0x39]],
  s: [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]],
  w: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
};
const POSIX_GROUPS: Record<string, Range[]> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a], [0x5f, 0x5f]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};
const FOREIGN_FOLDERS = [...ORBIT_OF.keys()].filter((r) => r > 0xff);
const unicodeGroupCache = new Map<string, Range[] | undefined>();

/** \p{name}: Latin-1 members, and the runes above Latin-1 that fold into it. */
function unicodeGroup(name: string): Range[] | undefined {
  if (unicodeGroupCache.has(name)) return unicodeGroupCache.get(name);
  let ranges: Range[] | undefined;
  if (name === 'Any') ranges = [[0, RUNE_MAX]];
  else if (/^[A-Za-z_]+$/.test(name)) {
    let re: RegExp | undefined;
    for (const src of [`^\\p{gc=${name}}$`, `^\\p{sc=${name}}$`]) {
      try {
        re = new RegExp(src, 'u');
        break;
      } catch {
        // not that kind of name
      }
    }
    if (re) {
      let cc: Range[] = [];
      for (let r = 0; r <= 0xff; r++) if (re.test(String.fromCodePoint(r))) cc = ccAdd(cc, r, r);
      for (const r of FOREIGN_FOLDERS) if (re.test(String.fromCodePoint(r))) cc = ccAdd(cc, r, r);
      ranges = cc;
    }
  }
  unicodeGroupCache.set(name, ranges);
  return ranges;
}

function addGroup(cc: Range[], group: Range[], sign: number, flags: number): Range[] {
  if (sign > 0) {
    for (const [lo, hi] of group) cc = ccAddFlags(cc, lo, hi, flags);
    return cc;
  }
  if (flags & FOLD_CASE) {
    // Negating a folded group: fold first, then negate.
    let folded: Range[] = [];
    for (const [lo, hi] of group) folded = ccAddFolded(folded, lo, hi);
    for (const [lo, hi] of ccNegate(folded)) cc = ccAdd(cc, lo, hi);
    return cc;
  }
  for (const [lo, hi] of ccNegate(group)) cc = ccAddFlags(cc, lo, hi, flags);
  return cc;
}

// --- parser ------------------------------------------------------------------------------------

function isMarker(op: Op): boolean {
  return op === Op.LeftParen || op === Op.VerticalBar;
}

class Parser {
  private stack: Re | undefined;
  private ncap = 0;
  private readonly runeMax = 0xff;

  constructor(private flags: number) {}

  pushRegexp(re: Re): void {
    this.maybeConcatString(-1, 0);
    if (re.op === Op.CharClass && re.building) {
      re.building = false;
      re.cc = ccRemoveAbove(re.cc, this.runeMax);
      const size = ccSize(re.cc);
      if (size === 1) {
        re = node(Op.Literal, this.flags, { rune: re.cc[0]![0] });
      } else if (size === 2) {
        const r = re.cc[0]![0];
        if (r >= 0x41 && r <= 0x5a && ccContains(re.cc, r + 32)) re = node(Op.Literal, this.flags | FOLD_CASE, { rune: r + 32 });
      }
    }
    re.down = this.stack;
    this.stack = re;
  }

  pushLiteral(r: number): void {
    if (this.flags & FOLD_CASE && hasFold(r)) {
      const orbit = ORBIT_OF.get(r) ?? [r];
      let cc: Range[] = [];
      for (const x of orbit) cc = ccAdd(cc, x, x);
      this.pushRegexp(node(Op.CharClass, this.flags & ~FOLD_CASE, { cc, building: true }));
      return;
    }
    if (this.maybeConcatString(r, this.flags)) return;
    this.pushRegexp(node(Op.Literal, this.flags, { rune: r }));
  }

  pushSimple(op: Op): void {
    this.pushRegexp(node(op, this.flags));
  }

  pushCaret(): void {
    this.pushSimple(this.flags & ONE_LINE ? Op.BeginText : Op.BeginLine);
  }

  pushDollar(): void {
    if (this.flags & ONE_LINE) this.pushRegexp(node(Op.EndText, this.flags | WAS_DOLLAR));
    else this.pushSimple(Op.EndLine);
  }

  pushDot(): void {
    if (this.flags & DOT_NL) {
      this.pushSimple(Op.AnyChar);
      return;
    }
    this.pushRegexp(node(Op.CharClass, this.flags & ~FOLD_CASE, { cc: [[0, 9], [11, this.runeMax]], building: true }));
  }

  pushRepeatOp(op: Op, nongreedy: boolean): void {
    const top = this.stack;
    if (!top || isMarker(top.op)) throw new Re2SyntaxError('missing argument to repetition operator');
    const fl = nongreedy ? this.flags ^ NON_GREEDY : this.flags;
    if (op === top.op && fl === top.flags) return;
    if ((top.op === Op.Star || top.op === Op.Plus || top.op === Op.Quest) && fl === top.flags) {
      top.op = Op.Star;
      return;
    }
    const re = node(op, fl, { subs: [top] });
    re.down = top.down;
    top.down = undefined;
    this.stack = re;
  }

  pushRepetition(min: number, max: number, nongreedy: boolean): void {
    const top = this.stack;
    if (!top || isMarker(top.op)) throw new Re2SyntaxError('missing argument to repetition operator');
    const fl = nongreedy ? this.flags ^ NON_GREEDY : this.flags;
    const re = node(Op.Repeat, fl, { subs: [top], min, max });
    re.down = top.down;
    top.down = undefined;
    this.stack = re;
  }

  leftParen(capture: boolean): void {
    this.pushRegexp(node(Op.LeftParen, this.flags, { cap: capture ? ++this.ncap : -1 }));
  }

  verticalBar(): void {
    this.maybeConcatString(-1, 0);
    this.doConcatenation();
    const r1 = this.stack;
    const r2 = r1?.down;
    if (r1 && r2 && r2.op === Op.VerticalBar) {
      const r3 = r2.down;
      if (r3 && (r1.op === Op.AnyChar || r3.op === Op.AnyChar)) {
        if (r3.op === Op.AnyChar && (r1.op === Op.Literal || r1.op === Op.CharClass || r1.op === Op.AnyChar)) {
          this.stack = r2;
          return;
        }
        if (r1.op === Op.AnyChar && (r3.op === Op.Literal || r3.op === Op.CharClass || r3.op === Op.AnyChar)) {
          r1.down = r3.down;
          r2.down = r1;
          this.stack = r2;
          return;
        }
      }
      r1.down = r2.down;
      r2.down = r1;
      this.stack = r2;
      return;
    }
    this.pushSimple(Op.VerticalBar);
  }

  rightParen(): void {
    this.doAlternation();
    const r1 = this.stack;
    const r2 = r1?.down;
    if (!r1 || !r2 || r2.op !== Op.LeftParen) throw new Re2SyntaxError('unexpected )');
    this.stack = r2.down;
    this.flags = r2.flags;
    let re: Re;
    if (r2.cap > 0) {
      re = node(Op.Capture, r2.flags, { cap: r2.cap, subs: [r1] });
      r1.down = undefined;
    } else {
      re = r1;
      re.down = undefined;
    }
    this.pushRegexp(re);
  }

  finish(): Re {
    this.doAlternation();
    const re = this.stack;
    if (!re || re.down) throw new Re2SyntaxError('missing )');
    return re;
  }

  setFlags(flags: number): void {
    this.flags = flags;
  }

  getFlags(): number {
    return this.flags;
  }

  private doConcatenation(): void {
    const r1 = this.stack;
    if (!r1 || isMarker(r1.op)) this.pushRegexp(node(Op.EmptyMatch, this.flags));
    this.doCollapse(Op.Concat);
  }

  private doAlternation(): void {
    this.verticalBar();
    const r1 = this.stack!;
    this.stack = r1.down;
    this.doCollapse(Op.Alternate);
  }

  private doCollapse(op: Op): void {
    const items: Re[] = [];
    let sub = this.stack;
    while (sub && !isMarker(sub.op)) {
      items.push(sub);
      sub = sub.down;
    }
    const next = sub;
    if (items.length === 1) return;
    const subs: Re[] = [];
    for (const it of items.reverse()) {
      if (it.op === op) subs.push(...it.subs);
      else subs.push(it);
      it.down = undefined;
    }
    const re = concatOrAlternate(op, subs, this.flags, true);
    re.down = next;
    this.stack = re;
  }

  /** Merges the top two stack entries when both are literals; with r >= 0, pushes literal r too. */
  private maybeConcatString(r: number, flags: number): boolean {
    const re1 = this.stack;
    const re2 = re1?.down;
    if (!re1 || !re2) return false;
    if (re1.op !== Op.Literal && re1.op !== Op.LiteralString) return false;
    if (re2.op !== Op.Literal && re2.op !== Op.LiteralString) return false;
    if ((re1.flags & FOLD_CASE) !== (re2.flags & FOLD_CASE)) return false;
    if (re2.op === Op.Literal) {
      re2.op = Op.LiteralString;
      re2.runes = [re2.rune];
    }
    if (re1.op === Op.Literal) re2.runes.push(re1.rune);
    else re2.runes.push(...re1.runes);
    if (r >= 0) {
      re1.op = Op.Literal;
      re1.rune = r;
      re1.runes = [];
      re1.flags = flags;
      return true;
    }
    this.stack = re2;
    return false;
  }
}

function concatOrAlternate(op: Op, subs: Re[], flags: number, canFactor: boolean): Re {
  if (subs.length === 1) return subs[0]!;
  if (subs.length === 0) return node(op === Op.Alternate ? Op.NoMatch : Op.EmptyMatch, flags);
  if (op === Op.Alternate && canFactor) {
    subs = factorAlternation([...subs], flags);
    if (subs.length === 1) return subs[0]!;
  }
  return node(op, flags, { subs });
}

function literalString(runes: number[], flags: number): Re {
  if (runes.length === 0) return node(Op.EmptyMatch, flags);
  if (runes.length === 1) return node(Op.Literal, flags, { rune: runes[0]! });
  return node(Op.LiteralString, flags, { runes: [...runes] });
}

// --- factoring of alternations ----------------------------------------------------------------

function leadingString(re: Re): { runes: number[]; flags: number } {
  while (re.op === Op.Concat && re.subs.length > 0) re = re.subs[0]!;
  const flags = re.flags & FOLD_CASE;
  if (re.op === Op.Literal) return { runes: [re.rune], flags };
  if (re.op === Op.LiteralString) return { runes: re.runes, flags };
  return { runes: [], flags };
}

function removeLeadingString(re: Re, n: number): void {
  const stk: Re[] = [];
  while (re.op === Op.Concat) {
    if (stk.length < 4) stk.push(re);
    re = re.subs[0]!;
  }
  if (re.op === Op.Literal) {
    re.rune = 0;
    re.op = Op.EmptyMatch;
  } else if (re.op === Op.LiteralString) {
    if (n >= re.runes.length) {
      re.runes = [];
      re.op = Op.EmptyMatch;
    } else if (n === re.runes.length - 1) {
      re.rune = re.runes[re.runes.length - 1]!;
      re.runes = [];
      re.op = Op.Literal;
    } else {
      re.runes = re.runes.slice(n);
    }
  }
  while (stk.length > 0) {
    const c = stk.pop()!;
    if (c.subs[0]!.op === Op.EmptyMatch) {
      if (c.subs.length === 2) Object.assign(c, { ...c.subs[1]!, down: c.down });
      else if (c.subs.length > 2) c.subs = c.subs.slice(1);
    }
  }
}

function leadingRegexp(re: Re): Re | undefined {
  if (re.op === Op.EmptyMatch) return undefined;
  if (re.op === Op.Concat && re.subs.length >= 2) return re.subs[0]!.op === Op.EmptyMatch ? undefined : re.subs[0];
  return re;
}

function removeLeadingRegexp(re: Re): Re {
  if (re.op === Op.EmptyMatch) return re;
  if (re.op === Op.Concat && re.subs.length >= 2) {
    if (re.subs[0]!.op === Op.EmptyMatch) return re;
    if (re.subs.length === 2) return re.subs[1]!;
    re.subs = re.subs.slice(1);
    return re;
  }
  return node(Op.EmptyMatch, re.flags);
}

interface Splice {
  prefix: Re;
  start: number;
  nsub: number;
  nsuffix: number;
}

function factorAlternation(sub: Re[], flags: number): Re[] {
  // RE2 does this with an explicit stack; recursion depth here is bounded by prefix nesting.
  return factorSpan(sub, 0, sub.length, flags);
}

/** Factors sub[start, start+n) in place and returns the factored list. */
function factorSpan(all: Re[], start: number, n: number, flags: number): Re[] {
  let sub = all.slice(start, start + n);
  for (let round = 1; round <= 3; round++) {
    const splices = round === 1 ? round1(sub) : round === 2 ? round2(sub) : round3(sub, flags);
    if (splices.length === 0) continue;
    if (round !== 3) {
      for (const s of splices) {
        const factored = factorSpan(sub, s.start, s.nsub, flags);
        s.nsuffix = factored.length;
        for (let k = 0; k < factored.length; k++) sub[s.start + k] = factored[k]!;
      }
    }
    const out: Re[] = [];
    let i = 0;
    for (const s of splices) {
      while (i < s.start) out.push(sub[i++]!);
      if (round === 3) out.push(s.prefix);
      else out.push(concatOrAlternate(Op.Concat, [s.prefix, concatOrAlternate(Op.Alternate, sub.slice(s.start, s.start + s.nsuffix), flags, false)], flags, false));
      i = s.start + s.nsub;
    }
    while (i < sub.length) out.push(sub[i++]!);
    sub = out;
  }
  return sub;
}

function round1(sub: Re[]): Splice[] {
  const splices: Splice[] = [];
  let start = 0;
  let rune: number[] = [];
  let nrune = 0;
  let runeflags = 0;
  for (let i = 0; i <= sub.length; i++) {
    let ri: number[] = [];
    let nri = 0;
    let fi = 0;
    if (i < sub.length) {
      const ls = leadingString(sub[i]!);
      ri = ls.runes;
      nri = ri.length;
      fi = ls.flags;
      if (fi === runeflags) {
        let same = 0;
        while (same < nrune && same < nri && rune[same] === ri[same]) same++;
        if (same > 0) {
          nrune = same;
          continue;
        }
      }
    }
    if (i - start >= 2) {
      const prefix = literalString(rune.slice(0, nrune), runeflags);
      for (let j = start; j < i; j++) removeLeadingString(sub[j]!, nrune);
      splices.push({ prefix, start, nsub: i - start, nsuffix: -1 });
    }
    if (i < sub.length) {
      start = i;
      rune = [...ri];
      nrune = nri;
      runeflags = fi;
    }
  }
  return splices;
}

function reEqual(a: Re, b: Re): boolean {
  if (a.op !== b.op) return false;
  switch (a.op) {
    case Op.EndText:
      return ((a.flags ^ b.flags) & WAS_DOLLAR) === 0;
    case Op.Literal:
      return a.rune === b.rune && ((a.flags ^ b.flags) & FOLD_CASE) === 0;
    case Op.LiteralString:
      return ((a.flags ^ b.flags) & FOLD_CASE) === 0 && a.runes.length === b.runes.length && a.runes.every((r, i) => r === b.runes[i]);
    case Op.Alternate:
    case Op.Concat:
      return a.subs.length === b.subs.length && a.subs.every((s, i) => reEqual(s, b.subs[i]!));
    case Op.Star:
    case Op.Plus:
    case Op.Quest:
      return ((a.flags ^ b.flags) & NON_GREEDY) === 0 && reEqual(a.subs[0]!, b.subs[0]!);
    case Op.Repeat:
      return ((a.flags ^ b.flags) & NON_GREEDY) === 0 && a.min === b.min && a.max === b.max && reEqual(a.subs[0]!, b.subs[0]!);
    case Op.Capture:
      return a.cap === b.cap && reEqual(a.subs[0]!, b.subs[0]!);
    case Op.CharClass:
      return ccEqual(a.cc, b.cc);
    default:
      return true;
  }
}

function round2(sub: Re[]): Splice[] {
  const splices: Splice[] = [];
  let start = 0;
  let first: Re | undefined;
  for (let i = 0; i <= sub.length; i++) {
    let fi: Re | undefined;
    if (i < sub.length) {
      fi = leadingRegexp(sub[i]!);
      if (
        first &&
        fi &&
        (first.op === Op.BeginLine ||
          first.op === Op.EndLine ||
          first.op === Op.WordBoundary ||
          first.op === Op.NoWordBoundary ||
          first.op === Op.BeginText ||
          first.op === Op.EndText ||
          first.op === Op.CharClass ||
          first.op === Op.AnyChar ||
          first.op === Op.AnyByte ||
          (first.op === Op.Repeat &&
            first.min === first.max &&
            [Op.Literal, Op.CharClass, Op.AnyChar, Op.AnyByte].includes(first.subs[0]!.op))) &&
        reEqual(first, fi)
      )
        continue;
    }
    if (i - start >= 2 && first) {
      const prefix = first;
      for (let j = start; j < i; j++) sub[j] = removeLeadingRegexp(sub[j]!);
      splices.push({ prefix, start, nsub: i - start, nsuffix: -1 });
    }
    if (i < sub.length) {
      start = i;
      first = fi;
    }
  }
  return splices;
}

function round3(sub: Re[], flags: number): Splice[] {
  const splices: Splice[] = [];
  let start = 0;
  let first: Re | undefined;
  const isLitOrClass = (re: Re): boolean => re.op === Op.Literal || re.op === Op.CharClass;
  for (let i = 0; i <= sub.length; i++) {
    let fi: Re | undefined;
    if (i < sub.length) {
      fi = sub[i]!;
      if (first && isLitOrClass(first) && isLitOrClass(fi)) continue;
    }
    if (i - start >= 2) {
      let cc: Range[] = [];
      for (let j = start; j < i; j++) {
        const re = sub[j]!;
        if (re.op === Op.CharClass) for (const [lo, hi] of re.cc) cc = ccAdd(cc, lo, hi);
        else cc = ccAddFlags(cc, re.rune, re.rune, re.flags);
      }
      splices.push({ prefix: node(Op.CharClass, flags & ~FOLD_CASE, { cc }), start, nsub: i - start, nsuffix: -1 });
    }
    if (i < sub.length) {
      start = i;
      first = fi;
    }
  }
  return splices;
}

// --- lexer -------------------------------------------------------------------------------------

const isHex = (c: number | undefined): boolean => c !== undefined && /[0-9A-Fa-f]/.test(String.fromCharCode(c));
const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const text = (runes: number[], a: number, b: number): string => Buffer.from(runes.slice(a, b)).toString('latin1');

class Lexer {
  i = 0;
  constructor(readonly t: number[]) {}
  get done(): boolean {
    return this.i >= this.t.length;
  }
  at(k = 0): number | undefined {
    return this.t[this.i + k];
  }
  is(k: number, ch: string): boolean {
    return this.t[this.i + k] === ch.charCodeAt(0);
  }
}

function parseEscape(lx: Lexer): number {
  const begin = lx.i;
  const bad = (): never => {
    throw new Re2SyntaxError(`invalid escape sequence: ${text(lx.t, begin, lx.i)}`);
  };
  if (lx.i + 1 >= lx.t.length) throw new Re2SyntaxError('trailing \\');
  lx.i++;
  const c = lx.t[lx.i++]!;
  if (c >= 0x31 && c <= 0x37 && !(lx.at()! >= 0x30 && lx.at()! <= 0x37)) return bad();
  if (c >= 0x30 && c <= 0x37) {
    let code = c - 0x30;
    for (let k = 0; k < 2 && lx.at() !== undefined && lx.at()! >= 0x30 && lx.at()! <= 0x37; k++) code = code * 8 + lx.t[lx.i++]! - 0x30;
    return code > 0xff ? bad() : code;
  }
  if (c === 0x78) {
    // \x
    if (lx.done) return bad();
    const c1 = lx.t[lx.i++]!;
    if (c1 === 0x7b) {
      let nhex = 0;
      let code = 0;
      if (lx.done) return bad();
      let d = lx.t[lx.i++]!;
      while (isHex(d)) {
        nhex++;
        code = code * 16 + parseInt(String.fromCharCode(d), 16);
        if (code > 0xff) return bad();
        if (lx.done) return bad();
        d = lx.t[lx.i++]!;
      }
      if (d !== 0x7d || nhex === 0) return bad();
      return code;
    }
    if (lx.done) return bad();
    const c2 = lx.t[lx.i++]!;
    if (!isHex(c1) || !isHex(c2)) return bad();
    return parseInt(String.fromCharCode(c1, c2), 16);
  }
  const simple: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, f: 12, v: 11 };
  const s = simple[String.fromCharCode(c)];
  if (s !== undefined) return s;
  if (c < 0x80 && !isAlpha(c) && !isDigit(c)) return c;
  return bad();
}

/** \d \s \w \D \S \W at lx.i, if there. */
function perlGroup(lx: Lexer): { group: Range[]; sign: number } | undefined {
  if (!lx.is(0, '\\')) return undefined;
  const c = lx.at(1);
  if (c === undefined) return undefined;
  const name = String.fromCharCode(c);
  const group = PERL_GROUPS[name.toLowerCase()];
  if (!group || !/[dswDSW]/.test(name)) return undefined;
  lx.i += 2;
  return { group, sign: name === name.toLowerCase() ? 1 : -1 };
}

/** \pN, \p{Name}, \PN, \p{^Name} at lx.i. */
function unicodeGroupAt(lx: Lexer): { group: Range[]; sign: number } {
  const begin = lx.i;
  let sign = lx.is(1, 'P') ? -1 : 1;
  lx.i += 2;
  let name: string;
  if (lx.done) throw new Re2SyntaxError(`invalid character class range: ${text(lx.t, begin, lx.i)}`);
  if (lx.is(0, '{')) {
    const end = lx.t.indexOf(0x7d, lx.i);
    if (end < 0) throw new Re2SyntaxError(`invalid character class range: ${text(lx.t, begin, lx.t.length)}`);
    name = text(lx.t, lx.i + 1, end);
    lx.i = end + 1;
  } else {
    name = String.fromCharCode(lx.t[lx.i++]!);
  }
  if (name.startsWith('^')) {
    sign = -sign;
    name = name.slice(1);
  }
  const group = unicodeGroup(name);
  if (!group) throw new Re2SyntaxError(`invalid character class range: ${text(lx.t, begin, lx.i)}`);
  return { group, sign };
}

function parseClassChar(lx: Lexer): number {
  if (lx.done) throw new Re2SyntaxError('missing ]');
  if (lx.is(0, '\\')) return parseEscape(lx);
  return lx.t[lx.i++]!;
}

function parseCharClass(lx: Lexer, flags: number): Re {
  lx.i++; // [
  let cc: Range[] = [];
  let negated = false;
  if (lx.is(0, '^')) {
    lx.i++;
    negated = true;
  }
  let first = true;
  while (!lx.done && (!lx.is(0, ']') || first)) {
    first = false;
    if (lx.is(0, '[') && lx.is(1, ':')) {
      const end = text(lx.t, lx.i, lx.t.length).indexOf(':]');
      if (end >= 0) {
        let name = text(lx.t, lx.i + 2, lx.i + end);
        let sign = 1;
        if (name.startsWith('^')) {
          sign = -1;
          name = name.slice(1);
        }
        const group = POSIX_GROUPS[name];
        if (!group) throw new Re2SyntaxError(`invalid character class range: ${text(lx.t, lx.i, lx.i + end + 2)}`);
        lx.i += end + 2;
        cc = addGroup(cc, group, sign, flags);
        continue;
      }
    }
    if (lx.is(0, '\\') && (lx.is(1, 'p') || lx.is(1, 'P'))) {
      const g = unicodeGroupAt(lx);
      cc = addGroup(cc, g.group, g.sign, flags);
      continue;
    }
    const pg = perlGroup(lx);
    if (pg) {
      cc = addGroup(cc, pg.group, pg.sign, flags);
      continue;
    }
    const lo = parseClassChar(lx);
    let hi = lo;
    if (lx.is(0, '-') && lx.at(1) !== undefined && !lx.is(1, ']')) {
      lx.i++;
      hi = parseClassChar(lx);
      if (hi < lo) throw new Re2SyntaxError('invalid character class range');
    }
    cc = ccAddFlags(cc, lo, hi, flags | CLASS_NL);
  }
  if (lx.done) throw new Re2SyntaxError('missing ]');
  lx.i++; // ]
  if (negated) cc = ccNegate(cc);
  return node(Op.CharClass, flags & ~FOLD_CASE, { cc, building: true });
}

function parseInteger(lx: Lexer): number | undefined {
  if (!isDigit(lx.at())) return undefined;
  if (lx.is(0, '0') && isDigit(lx.at(1))) return undefined;
  let n = 0;
  while (isDigit(lx.at())) {
    if (n >= 100_000_000) n = 100_000_000;
    else n = n * 10 + lx.t[lx.i]! - 0x30;
    lx.i++;
  }
  return n;
}

function maybeRepeat(lx: Lexer): { lo: number; hi: number } | undefined {
  const save = lx.i;
  const fail = (): undefined => {
    lx.i = save;
    return undefined;
  };
  lx.i++; // {
  const lo = parseInteger(lx);
  if (lo === undefined || lx.done) return fail();
  let hi = lo;
  if (lx.is(0, ',')) {
    lx.i++;
    if (lx.done) return fail();
    if (lx.is(0, '}')) hi = -1;
    else {
      const h = parseInteger(lx);
      if (h === undefined) return fail();
      hi = h;
    }
  }
  if (!lx.is(0, '}')) return fail();
  lx.i++;
  return { lo, hi };
}

function parsePerlFlags(lx: Lexer, ps: Parser): void {
  lx.i += 2; // (?
  if ((lx.is(0, 'P') && lx.is(1, '<')) || (lx.is(0, '<') && !lx.is(1, '=') && !lx.is(1, '!'))) {
    const end = lx.t.indexOf(0x3e, lx.i);
    if (end < 0) throw new Re2SyntaxError('invalid named capture group');
    ps.leftParen(true);
    lx.i = end + 1;
    return;
  }
  let nflags = ps.getFlags();
  let negated = false;
  let sawflag = false;
  for (;;) {
    if (lx.done) throw new Re2SyntaxError('missing )');
    const c = String.fromCharCode(lx.t[lx.i++]!);
    const set = (bit: number, on: boolean): void => {
      sawflag = true;
      nflags = on !== negated ? nflags | bit : nflags & ~bit;
    };
    if (c === 'i') set(FOLD_CASE, true);
    else if (c === 'm') set(ONE_LINE, false);
    else if (c === 's') set(DOT_NL, true);
    else if (c === 'U') set(NON_GREEDY, true);
    else if (c === '-') {
      if (negated) throw new Re2SyntaxError('invalid perl operator');
      negated = true;
      sawflag = false;
    } else if (c === ':') {
      ps.leftParen(false);
      break;
    } else if (c === ')') break;
    else throw new Re2SyntaxError('invalid perl operator');
  }
  if (negated && !sawflag) throw new Re2SyntaxError('invalid perl operator');
  ps.setFlags(nflags);
}

function parse(pattern: string): Re {
  const lx = new Lexer([...Buffer.from(pattern, 'utf8')]);
  const ps = new Parser(ENVOY_FLAGS);
  let lastUnary = false;
  // One case per metacharacter: the cases look alike on purpose (each says what its token
  // does and how far it advances), as a tokenizer reads best.
  while (!lx.done) {
    let unary = false;
    const c = String.fromCharCode(lx.at()!);
    switch (c) {
      case '(':
        if (lx.is(1, '?')) parsePerlFlags(lx, ps);
        else {
          ps.leftParen(true);
          lx.i++;
        }
        break;
      case '|':
        ps.verticalBar();
        lx.i++;
        break;
      case ')':
        ps.rightParen();
        lx.i++;
        break;
      case '^':
        ps.pushCaret();
        lx.i++;
        break;
      case '$':
        ps.pushDollar();
        lx.i++;
        break;
      case '.':
        ps.pushDot();
        lx.i++;
        break;
      case '[':
        ps.pushRegexp(parseCharClass(lx, ps.getFlags()));
        break;
      case '*':
      case '+':
      case '?': {
        lx.i++;
        let nongreedy = false;
        if (lx.is(0, '?')) {
          nongreedy = true;
          lx.i++;
        }
        if (lastUnary) throw new Re2SyntaxError('bad repetition operator');
        ps.pushRepeatOp(c === '*' ? Op.Star : c === '+' ? Op.Plus : Op.Quest, nongreedy);
        unary = true;
        break;
      }
      case '{': {
        const rep = maybeRepeat(lx);
        if (!rep) {
          ps.pushLiteral(0x7b);
          lx.i++;
          break;
        }
        let nongreedy = false;
        if (lx.is(0, '?')) {
          nongreedy = true;
          lx.i++;
        }
        if (lastUnary) throw new Re2SyntaxError('bad repetition operator');
        if ((rep.hi !== -1 && rep.hi < rep.lo) || rep.lo > 1000 || rep.hi > 1000) throw new Re2SyntaxError('invalid repetition size');
        ps.pushRepetition(rep.lo, rep.hi, nongreedy);
        unary = true;
        break;
      }
      case '\\': {
        const n = lx.at(1);
        const ch = n === undefined ? '' : String.fromCharCode(n);
        if (ch === 'b' || ch === 'B') {
          ps.pushSimple(ch === 'b' ? Op.WordBoundary : Op.NoWordBoundary);
          lx.i += 2;
        } else if (ch === 'A' || ch === 'z') {
          ps.pushSimple(ch === 'A' ? Op.BeginText : Op.EndText);
          lx.i += 2;
        } else if (ch === 'C') {
          ps.pushSimple(Op.AnyByte);
          lx.i += 2;
        } else if (ch === 'Q') {
          lx.i += 2;
          while (!lx.done) {
            if (lx.is(0, '\\') && lx.is(1, 'E')) {
              lx.i += 2;
              break;
            }
            ps.pushLiteral(lx.t[lx.i++]!);
          }
        } else if (ch === 'p' || ch === 'P') {
          const g = unicodeGroupAt(lx);
          ps.pushRegexp(node(Op.CharClass, ps.getFlags() & ~FOLD_CASE, { cc: addGroup([], g.group, g.sign, ps.getFlags()), building: true }));
        } else {
          const pg = perlGroup(lx);
          if (pg) ps.pushRegexp(node(Op.CharClass, ps.getFlags() & ~FOLD_CASE, { cc: addGroup([], pg.group, pg.sign, ps.getFlags()), building: true }));
          else ps.pushLiteral(parseEscape(lx));
        }
        break;
      }
      default:
        ps.pushLiteral(lx.t[lx.i++]!);
    }
    lastUnary = unary;
  }
  return ps.finish();
}

// --- simplification ------------------------------------------------------------------------------

const isRepeatOf = (re: Re): boolean =>
  (re.op === Op.Star || re.op === Op.Plus || re.op === Op.Quest || re.op === Op.Repeat) &&
  [Op.Literal, Op.CharClass, Op.AnyChar, Op.AnyByte].includes(re.subs[0]!.op);

function canCoalesce(r1: Re, r2: Re): boolean {
  if (!isRepeatOf(r1)) return false;
  const x = r1.subs[0]!;
  if ((r2.op === Op.Star || r2.op === Op.Plus || r2.op === Op.Quest || r2.op === Op.Repeat) && reEqual(x, r2.subs[0]!) && (r1.flags & NON_GREEDY) === (r2.flags & NON_GREEDY)) return true;
  if (reEqual(x, r2)) return true;
  return x.op === Op.Literal && r2.op === Op.LiteralString && r2.runes[0] === x.rune && (x.flags & FOLD_CASE) === (r2.flags & FOLD_CASE);
}

function doCoalesce(subs: Re[], i: number): void {
  const r1 = subs[i]!;
  const r2 = subs[i + 1]!;
  const nre = node(Op.Repeat, r1.flags, { subs: [r1.subs[0]!] });
  if (r1.op === Op.Star) [nre.min, nre.max] = [0, -1];
  else if (r1.op === Op.Plus) [nre.min, nre.max] = [1, -1];
  else if (r1.op === Op.Quest) [nre.min, nre.max] = [0, 1];
  else [nre.min, nre.max] = [r1.min, r1.max];
  const empty = (): void => {
    subs[i] = node(Op.EmptyMatch, 0);
    subs[i + 1] = nre;
  };
  switch (r2.op) {
    case Op.Star:
      nre.max = -1;
      return empty();
    case Op.Plus:
      nre.min++;
      nre.max = -1;
      return empty();
    case Op.Quest:
      if (nre.max !== -1) nre.max++;
      return empty();
    case Op.Repeat:
      nre.min += r2.min;
      if (r2.max === -1) nre.max = -1;
      else if (nre.max !== -1) nre.max += r2.max;
      return empty();
    case Op.LiteralString: {
      const r = r1.subs[0]!.rune;
      let n = 1;
      while (n < r2.runes.length && r2.runes[n] === r) n++;
      nre.min += n;
      if (nre.max !== -1) nre.max += n;
      if (n === r2.runes.length) return empty();
      subs[i] = nre;
      subs[i + 1] = literalString(r2.runes.slice(n), r2.flags);
      return;
    }
    default:
      nre.min++;
      if (nre.max !== -1) nre.max++;
      return empty();
  }
}

function coalesce(re: Re): Re {
  if (re.subs.length === 0) return re;
  const subs = re.subs.map(coalesce);
  const changed = subs.some((s, i) => s !== re.subs[i]);
  if (re.op !== Op.Concat || !subs.some((s, i) => i + 1 < subs.length && canCoalesce(s, subs[i + 1]!))) {
    return changed ? { ...re, subs } : re;
  }
  for (let i = 0; i + 1 < subs.length; i++) if (canCoalesce(subs[i]!, subs[i + 1]!)) doCoalesce(subs, i);
  return { ...re, subs: subs.filter((s) => s.op !== Op.EmptyMatch) };
}

function starPlusOrQuest(op: Op, sub: Re, flags: number): Re {
  if (op === sub.op && flags === sub.flags) return sub;
  if ((sub.op === Op.Star || sub.op === Op.Plus || sub.op === Op.Quest) && flags === sub.flags) {
    return sub.op === Op.Star ? sub : node(Op.Star, flags, { subs: [sub.subs[0]!] });
  }
  return node(op, flags, { subs: [sub] });
}

function isEmptyOp(re: Re): boolean {
  switch (re.op) {
    case Op.BeginLine:
    case Op.EndLine:
    case Op.WordBoundary:
    case Op.NoWordBoundary:
    case Op.BeginText:
    case Op.EndText:
      return true;
    case Op.Concat:
    case Op.Alternate:
      return re.subs.every(isEmptyOp);
    case Op.Star:
    case Op.Plus:
    case Op.Quest:
    case Op.Repeat:
    case Op.Capture:
      return isEmptyOp(re.subs[0]!);
    default:
      return false;
  }
}

function simplifyRepeat(re: Re, min: number, max: number, f: number): Re {
  if (isEmptyOp(re)) {
    min = Math.min(min, 1);
    max = Math.min(max, 1);
  }
  if (max === -1) {
    if (min === 0) return starPlusOrQuest(Op.Star, re, f);
    if (min === 1) return starPlusOrQuest(Op.Plus, re, f);
    const subs: Re[] = [];
    for (let i = 0; i < min - 1; i++) subs.push(re);
    subs.push(starPlusOrQuest(Op.Plus, re, f));
    return concatOrAlternate(Op.Concat, subs, f, false);
  }
  if (min === 0 && max === 0) return node(Op.EmptyMatch, f);
  if (min === 1 && max === 1) return re;
  let nre: Re | undefined;
  if (min > 0) nre = concatOrAlternate(Op.Concat, Array<Re>(min).fill(re), f, false);
  if (max > min) {
    let suf = starPlusOrQuest(Op.Quest, re, f);
    for (let i = min + 1; i < max; i++) suf = starPlusOrQuest(Op.Quest, node(Op.Concat, f, { subs: [re, suf] }), f);
    nre = nre ? node(Op.Concat, f, { subs: [nre, suf] }) : suf;
  }
  return nre ?? node(Op.NoMatch, f);
}

function simplify(re: Re): Re {
  switch (re.op) {
    case Op.Concat:
    case Op.Alternate: {
      const subs = re.subs.map(simplify);
      return subs.some((s, i) => s !== re.subs[i]) ? { ...re, subs } : re;
    }
    case Op.Capture: {
      const sub = simplify(re.subs[0]!);
      return sub === re.subs[0] ? re : { ...re, subs: [sub] };
    }
    case Op.Star:
    case Op.Plus:
    case Op.Quest: {
      const sub = simplify(re.subs[0]!);
      if (sub.op === Op.EmptyMatch) return sub;
      if (sub === re.subs[0]) return re;
      if (re.op === sub.op && re.flags === sub.flags) return sub;
      return { ...re, subs: [sub] };
    }
    case Op.Repeat: {
      const sub = simplify(re.subs[0]!);
      if (sub.op === Op.EmptyMatch) return sub;
      return simplifyRepeat(sub, re.min, re.max, re.flags);
    }
    case Op.CharClass:
      if (re.cc.length === 0) return node(Op.NoMatch, re.flags);
      if (re.cc.length === 1 && re.cc[0]![0] === 0 && re.cc[0]![1] === RUNE_MAX) return node(Op.AnyChar, re.flags);
      return re;
    default:
      return re;
  }
}

// --- compiler ----------------------------------------------------------------------------------

const enum Inst {
  Alt = 1,
  AltMatch,
  ByteRange,
  Capture,
  EmptyWidth,
  Match,
  Nop,
  Fail,
}

interface Instruction {
  op: Inst;
  out: number;
  out1: number;
  lo: number;
  hi: number;
}

/** A patch list: holes to fill, as inst<<1 | (1 for out1). */
interface Frag {
  begin: number;
  end: number[];
  nullable: boolean;
}

class Compiler {
  readonly inst: Instruction[] = [{ op: Inst.Fail, out: 0, out1: 0, lo: 0, hi: 0 }];
  private static readonly MAX_INST = 1_000_000;

  private alloc(op: Inst, lo = 0, hi = 0): number {
    if (this.inst.length >= Compiler.MAX_INST) throw new Re2SyntaxError('pattern too large - compile failed');
    this.inst.push({ op, out: 0, out1: 0, lo, hi });
    return this.inst.length - 1;
  }

  private patch(l: number[], v: number): void {
    for (const p of l) {
      const ip = this.inst[p >> 1]!;
      if (p & 1) ip.out1 = v;
      else ip.out = v;
    }
  }

  noMatch(): Frag {
    return { begin: 0, end: [], nullable: false };
  }

  cat(a: Frag, b: Frag): Frag {
    if (a.begin === 0 || b.begin === 0) return this.noMatch();
    const begin = this.inst[a.begin]!;
    if (begin.op === Inst.Nop && a.end.length === 1 && a.end[0] === a.begin << 1 && begin.out === 0) {
      this.patch(a.end, b.begin);
      return b;
    }
    this.patch(a.end, b.begin);
    return { begin: a.begin, end: b.end, nullable: a.nullable && b.nullable };
  }

  alt(a: Frag, b: Frag): Frag {
    if (a.begin === 0) return b;
    if (b.begin === 0) return a;
    const id = this.alloc(Inst.Alt);
    this.inst[id]!.out = a.begin;
    this.inst[id]!.out1 = b.begin;
    return { begin: id, end: [...a.end, ...b.end], nullable: a.nullable || b.nullable };
  }

  plus(a: Frag, nongreedy: boolean): Frag {
    const id = this.alloc(Inst.Alt);
    let pl: number[];
    if (nongreedy) {
      this.inst[id]!.out1 = a.begin;
      pl = [id << 1];
    } else {
      this.inst[id]!.out = a.begin;
      pl = [(id << 1) | 1];
    }
    this.patch(a.end, id);
    return { begin: a.begin, end: pl, nullable: a.nullable };
  }

  star(a: Frag, nongreedy: boolean): Frag {
    if (a.nullable) return this.quest(this.plus(a, nongreedy), nongreedy);
    const id = this.alloc(Inst.Alt);
    this.patch(a.end, id);
    if (nongreedy) {
      this.inst[id]!.out1 = a.begin;
      return { begin: id, end: [id << 1], nullable: true };
    }
    this.inst[id]!.out = a.begin;
    return { begin: id, end: [(id << 1) | 1], nullable: true };
  }

  quest(a: Frag, nongreedy: boolean): Frag {
    if (a.begin === 0) return this.nop();
    const id = this.alloc(Inst.Alt);
    let pl: number[];
    if (nongreedy) {
      this.inst[id]!.out1 = a.begin;
      pl = [id << 1];
    } else {
      this.inst[id]!.out = a.begin;
      pl = [(id << 1) | 1];
    }
    return { begin: id, end: [...pl, ...a.end], nullable: true };
  }

  byteRange(lo: number, hi: number): Frag {
    const id = this.alloc(Inst.ByteRange, lo, hi);
    return { begin: id, end: [id << 1], nullable: false };
  }

  nop(): Frag {
    const id = this.alloc(Inst.Nop);
    return { begin: id, end: [id << 1], nullable: true };
  }

  match(): Frag {
    const id = this.alloc(Inst.Match);
    return { begin: id, end: [], nullable: false };
  }

  emptyWidth(): Frag {
    const id = this.alloc(Inst.EmptyWidth);
    return { begin: id, end: [id << 1], nullable: true };
  }

  capture(a: Frag): Frag {
    if (a.begin === 0) return this.noMatch();
    const id = this.alloc(Inst.Capture);
    this.alloc(Inst.Capture);
    this.inst[id]!.out = a.begin;
    this.patch(a.end, id + 1);
    return { begin: id, end: [(id + 1) << 1], nullable: a.nullable };
  }

  charClass(cc: Range[]): Frag {
    if (cc.length === 0) throw new Re2SyntaxError('empty character class');
    const foldascii = ccFoldsAscii(cc);
    let begin = 0;
    const end: number[] = [];
    for (const [lo, hi0] of cc) {
      if (foldascii && lo >= 0x41 && hi0 <= 0x5a) continue;
      if (lo > 0xff) continue;
      const f = this.byteRange(lo, Math.min(hi0, 0xff));
      end.push(...f.end);
      if (begin === 0) begin = f.begin;
      else {
        const a = this.alloc(Inst.Alt);
        this.inst[a]!.out = begin;
        this.inst[a]!.out1 = f.begin;
        begin = a;
      }
    }
    return { begin, end, nullable: false };
  }

  walk(re: Re): Frag {
    switch (re.op) {
      case Op.NoMatch:
        return this.noMatch();
      case Op.EmptyMatch:
        return this.nop();
      case Op.Concat: {
        const frags = re.subs.map((s) => this.walk(s));
        let f = frags[0]!;
        for (let i = 1; i < frags.length; i++) f = this.cat(f, frags[i]!);
        return f;
      }
      case Op.Alternate: {
        const frags = re.subs.map((s) => this.walk(s));
        let f = frags[0]!;
        for (let i = 1; i < frags.length; i++) f = this.alt(f, frags[i]!);
        return f;
      }
      case Op.Star:
        return this.star(this.walk(re.subs[0]!), (re.flags & NON_GREEDY) !== 0);
      case Op.Plus:
        return this.plus(this.walk(re.subs[0]!), (re.flags & NON_GREEDY) !== 0);
      case Op.Quest:
        return this.quest(this.walk(re.subs[0]!), (re.flags & NON_GREEDY) !== 0);
      case Op.Literal:
        return this.byteRange(re.rune, re.rune);
      case Op.LiteralString: {
        let f = this.byteRange(re.runes[0]!, re.runes[0]!);
        for (let i = 1; i < re.runes.length; i++) f = this.cat(f, this.byteRange(re.runes[i]!, re.runes[i]!));
        return f;
      }
      case Op.AnyChar:
      case Op.AnyByte:
        return this.byteRange(0, 0xff);
      case Op.CharClass:
        return this.charClass(re.cc);
      case Op.Capture: {
        const f = this.walk(re.subs[0]!);
        return re.cap < 0 ? f : this.capture(f);
      }
      case Op.BeginLine:
      case Op.EndLine:
      case Op.BeginText:
      case Op.EndText:
      case Op.WordBoundary:
      case Op.NoWordBoundary:
        return this.emptyWidth();
      default:
        throw new Re2SyntaxError(`unexpected regexp op ${re.op}`);
    }
  }
}

/** Removes a leading \A (start) or trailing \z (end) the way RE2's compiler does, if there. */
function stripAnchor(re: Re, start: boolean, depth = 0): Re | undefined {
  if (depth >= 4) return undefined;
  if (re.op === Op.Concat && re.subs.length > 0) {
    const k = start ? 0 : re.subs.length - 1;
    const sub = stripAnchor(re.subs[k]!, start, depth + 1);
    if (!sub) return undefined;
    const subs = [...re.subs];
    subs[k] = sub;
    return { ...re, subs };
  }
  if (re.op === Op.Capture) {
    const sub = stripAnchor(re.subs[0]!, start, depth + 1);
    return sub ? { ...re, subs: [sub] } : undefined;
  }
  if (re.op === (start ? Op.BeginText : Op.EndText)) return node(Op.EmptyMatch, re.flags);
  return undefined;
}

function isMatch(prog: Instruction[], id: number): boolean {
  for (;;) {
    const ip = prog[id]!;
    if (ip.op === Inst.Capture || ip.op === Inst.Nop) id = ip.out;
    else return ip.op === Inst.Match;
  }
}

/** RE2's Prog::Optimize: skips Nops, marks `.*` loops before a match as AltMatch. */
function optimize(prog: Instruction[], start: number): void {
  const skipNops = (j: number): number => {
    while (j !== 0 && prog[j]!.op === Inst.Nop) j = prog[j]!.out;
    return j;
  };
  const queue = (seen: Set<number>, order: number[], id: number): void => {
    if (id !== 0 && !seen.has(id)) {
      seen.add(id);
      order.push(id);
    }
  };
  let seen = new Set<number>();
  let order: number[] = [];
  queue(seen, order, start);
  for (let k = 0; k < order.length; k++) {
    const ip = prog[order[k]!]!;
    ip.out = skipNops(ip.out);
    queue(seen, order, ip.out);
    if (ip.op === Inst.Alt) {
      ip.out1 = skipNops(ip.out1);
      queue(seen, order, ip.out1);
    }
  }
  seen = new Set<number>();
  order = [];
  queue(seen, order, start);
  for (let k = 0; k < order.length; k++) {
    const id = order[k]!;
    const ip = prog[id]!;
    queue(seen, order, ip.out);
    if (ip.op === Inst.Alt) queue(seen, order, ip.out1);
    if (ip.op === Inst.Alt) {
      const j = prog[ip.out]!;
      const l = prog[ip.out1]!;
      const anyLoop = (x: Instruction): boolean => x.op === Inst.ByteRange && x.out === id && x.lo === 0 && x.hi === 0xff;
      if ((anyLoop(j) && isMatch(prog, ip.out1)) || (isMatch(prog, ip.out) && anyLoop(l))) ip.op = Inst.AltMatch;
    }
  }
}

/** RE2's Prog::Flatten, counting the instructions it emits. */
function flattenedSize(prog: Instruction[], start: number, startUnanchored: number): number {
  const roots = new Map<number, number>(); // inst id -> root order
  const addRoot = (id: number): void => {
    if (!roots.has(id)) roots.set(id, roots.size);
  };
  const preds = new Map<number, number[]>();
  addRoot(0);
  addRoot(startUnanchored);
  addRoot(start);

  // Successor roots and predecessors.
  {
    const seen = new Set<number>();
    const stk = [startUnanchored];
    while (stk.length > 0) {
      let id = stk.pop()!;
      for (;;) {
        if (seen.has(id)) break;
        seen.add(id);
        const ip = prog[id]!;
        if (ip.op === Inst.Alt || ip.op === Inst.AltMatch) {
          for (const out of [ip.out, ip.out1]) {
            const list = preds.get(out) ?? [];
            list.push(id);
            preds.set(out, list);
          }
          stk.push(ip.out1);
          id = ip.out;
        } else if (ip.op === Inst.ByteRange || ip.op === Inst.Capture || ip.op === Inst.EmptyWidth) {
          addRoot(ip.out);
          id = ip.out;
        } else if (ip.op === Inst.Nop) id = ip.out;
        else break;
      }
    }
  }

  const reach = (root: number, emit?: (ip: Instruction | 'nop') => void): Set<number> => {
    const seen = new Set<number>();
    const stk = [root];
    while (stk.length > 0) {
      let id = stk.pop()!;
      for (;;) {
        if (seen.has(id)) break;
        seen.add(id);
        if (id !== root && roots.has(id)) {
          emit?.('nop');
          break;
        }
        const ip = prog[id]!;
        if (ip.op === Inst.Alt || ip.op === Inst.AltMatch) {
          if (ip.op === Inst.AltMatch) emit?.(ip);
          stk.push(ip.out1);
          id = ip.out;
        } else if (ip.op === Inst.Nop) id = ip.out;
        else {
          emit?.(ip);
          break;
        }
      }
    }
    return seen;
  };

  // Dominator roots, from the highest instruction id down.
  const sorted = [...roots.keys()].sort((a, b) => a - b);
  for (let k = sorted.length - 1; k > 0; k--) {
    const root = sorted[k]!;
    if (root === startUnanchored || root === start) continue;
    const seen = reach(root);
    for (const id of seen) {
      for (const p of preds.get(id) ?? []) if (!seen.has(p)) addRoot(id);
    }
  }

  let size = 0;
  for (const root of roots.keys()) reach(root, () => size++);
  return size;
}

const sizeCache = new Map<string, number | string>();

/**
 * The number of instructions Envoy's RE2 compiles `pattern` to (RE2::ProgramSize, Latin-1
 * mode, Envoy's options), or a string saying why RE2 rejects it.
 */
export function re2ProgramSize(pattern: string): number | string {
  const cached = sizeCache.get(pattern);
  if (cached !== undefined) return cached;
  let result: number | string;
  try {
    result = programSize(pattern);
  } catch (err) {
    // The model recurses once per nesting level: a pattern nested thousands deep is refused.
    if (err instanceof RangeError) result = 'nests too deeply to check';
    else if (!(err instanceof Re2SyntaxError)) throw err;
    else result = err.message;
  }
  if (sizeCache.size > 10_000) sizeCache.clear();
  sizeCache.set(pattern, result);
  return result;
}

function programSize(pattern: string): number {
  let re = parse(pattern);
  // RE2 matches a literal after leading ^ separately and compiles only what follows.
  if (re.op === Op.Concat) {
    let i = 0;
    while (i < re.subs.length && re.subs[i]!.op === Op.BeginText) i++;
    if (i > 0 && i < re.subs.length && (re.subs[i]!.op === Op.Literal || re.subs[i]!.op === Op.LiteralString)) {
      re = i + 1 < re.subs.length ? concatOrAlternate(Op.Concat, re.subs.slice(i + 1), re.flags, false) : node(Op.EmptyMatch, re.flags);
    }
  }
  let sre = simplify(coalesce(re));
  const noStart = stripAnchor(sre, true);
  if (noStart) sre = noStart;
  const noEnd = stripAnchor(sre, false);
  if (noEnd) sre = noEnd;
  const c = new Compiler();
  let all = c.walk(sre);
  all = c.cat(all, c.match());
  const start = all.begin;
  if (!noStart) all = c.cat(c.star(c.byteRange(0, 0xff), true), all);
  const startUnanchored = all.begin;
  if (start === 0 && startUnanchored === 0) return 1;
  optimize(c.inst, start);
  return flattenedSize(c.inst, start, startUnanchored);
}
