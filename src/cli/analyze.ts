// `meshd analyze`: the checks of src/analysis/ over the live cluster, YAML files, or files
// merged over the cluster (a file's object replaces the cluster's of the same kind, namespace
// and name), printed as `istioctl analyze` prints them, exit status 79 when findings at or
// above the failure threshold are present.
import { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { extname, join } from 'node:path';
import { analyze, atLeast, parseSeverity, SEVERITIES, type Finding, type FindingOrigin, type Severity } from '../analysis/index.js';
import { formatFindings, OUTPUT_FORMATS, type OutputFormat } from '../analysis/format.js';
import { keyOf as objectKeyOf, objectKey, type MeshObject, type ObjectError } from '../model/objects.js';
import { DEFAULT_MAX_FILE_BYTES, loadFiles, mergeFiles, parseYamlText, type FileLoad } from '../sources/file/file-source.js';
import { listCluster } from '../sources/kube/list-once.js';
import { loadKubeConfig } from '../kube/client.js';
import { parseMeshConfig, type MeshConfig } from '../model/mesh-config.js';

/** istioctl's exit status when analysis finds issues at or above the failure threshold. */
export const EXIT_FINDINGS = 79;
/** istioctl's exit status when some input could not be parsed (and nothing worse was found). */
export const EXIT_DATA_ERROR = 65;
export const EXIT_USAGE = 1;

const YAML_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const DOCS = 'https://istio.io/latest/docs/reference/config/analysis';

export interface AnalyzeOptions {
  namespace?: string;
  allNamespaces?: boolean;
  /** "false" (from `--use-kube=false`) or false: files only. */
  useKube?: boolean | string;
  kubeconfig?: string;
  output?: string;
  failureThreshold?: string;
  outputThreshold?: string;
  color?: boolean | string;
  domain?: string;
  /** istioctl's --meshConfigFile: the mesh config file the objects are served with. */
  meshConfigFile?: string;
}

export interface AnalyzeIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stdout is a terminal (colours by default). */
  isTTY?: boolean;
  env?: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

function flag(value: boolean | string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  const v = value.toLowerCase();
  if (v === 'true' || v === '1' || v === '') return true;
  if (v === 'false' || v === '0') return false;
  throw new UsageError(`"${value}" is not true or false`);
}

/** --meshConfigFile: a file that cannot be read or is not a valid mesh config is a usage error. */
function readMeshConfig(file: string): MeshConfig {
  try {
    return parseMeshConfig(readFileSync(file, 'utf8'), `file ${file}`).config;
  } catch (err) {
    throw new UsageError(`--meshConfigFile: ${(err as Error).message}`);
  }
}

function severity(text: string | undefined, fallback: Severity, name: string): Severity {
  if (text === undefined) return fallback;
  const s = parseSeverity(text);
  if (!s) throw new UsageError(`--${name} "${text}" is not a severity; use one of ${SEVERITIES.join(', ')}`);
  return s;
}

interface FileInput {
  objects: MeshObject[];
  invalid: ObjectError[];
  origins: Map<string, FindingOrigin>;
  /** Files or documents that could not be read or parsed at all. */
  parseErrors: string[];
  notes: string[];
}

/** Reads FILES (files and directories, recursively) with the file source's parser. */
function readFiles(paths: readonly string[], defaultNamespace: string): FileInput {
  const loads = new Map<string, FileLoad>();
  const notes: string[] = [];
  for (const path of paths) {
    let st;
    try {
      st = statSync(path);
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
    }
    if (st.isDirectory()) {
      for (const [name, load] of loadFiles(path, undefined, undefined, { defaultNamespace })) {
        const file = join(path, name);
        loads.set(file, { ...load, problems: load.problems.map((p) => ({ ...p, file: join(path, p.file) })), ignored: load.ignored.map((p) => ({ ...p, file: join(path, p.file) })) });
      }
      continue;
    }
    if (!YAML_EXTENSIONS.has(extname(path).toLowerCase())) {
      notes.push(`skipping ${path}: only .yaml, .yml and .json files are read`);
      continue;
    }
    if (st.size > DEFAULT_MAX_FILE_BYTES) throw new UsageError(`${path} is ${st.size} bytes, over the limit of ${DEFAULT_MAX_FILE_BYTES} bytes for one file`);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
    }
    loads.set(path, parseYamlText(text, path, defaultNamespace));
  }
  const merged = mergeFiles('', loads);
  const lineOf = (file: string, document: number): number => loads.get(file)?.documentLines[document] ?? 1;
  const origins = new Map<string, FindingOrigin>();
  for (const p of merged.placed) origins.set(objectKey(p.object), { file: p.file, line: lineOf(p.file, p.document) });
  const invalid: ObjectError[] = [];
  const parseErrors: string[] = [];
  const perFile = [...loads.values()].reduce((n, l) => n + l.problems.length, 0);
  merged.problems.forEach((p, i) => {
    if (p.object) {
      invalid.push(p.object);
      origins.set(objectKeyOf(p.object.kind, p.object.namespace, p.object.name), { file: p.file, line: lineOf(p.file, p.document) });
    } else if (i < perFile) parseErrors.push(`${p.file} (document ${p.document}): ${p.message}`);
    else notes.push(p.message);
  });
  return { objects: merged.objects, invalid, origins, parseErrors, notes };
}

/** Findings about the selected namespace; with files over a cluster, the files' objects are all kept (they are what is being proposed). */
function inScope(findings: Finding[], namespace: string | undefined, keepFiles: boolean): Finding[] {
  if (namespace === undefined) return findings;
  return findings.filter((f) => f.namespace === namespace || (f.kind === 'Namespace' && f.name === namespace) || (keepFiles && f.origin !== undefined));
}

function defaultKubeconfig(env: NodeJS.ProcessEnv): string {
  return env.KUBECONFIG?.split(':')[0] || join(homedir(), '.kube', 'config');
}

/** Runs the analysis and prints it; resolves to the exit status. */
export async function runAnalyze(paths: readonly string[], o: AnalyzeOptions, io: AnalyzeIo): Promise<number> {
  const env = io.env ?? process.env;
  try {
    const format = (o.output ?? 'log').toLowerCase() as OutputFormat;
    if (!OUTPUT_FORMATS.includes(format)) throw new UsageError(`-o "${o.output}" is not an output format; use one of ${OUTPUT_FORMATS.join(', ')}`);
    const failAt = severity(o.failureThreshold, 'Error', 'failure-threshold');
    const showAt = severity(o.outputThreshold, 'Info', 'output-threshold');
    const colour = flag(o.color, io.isTTY === true && env.TERM !== 'dumb');
    let useKube = flag(o.useKube, true);
    if (o.allNamespaces && o.namespace) throw new UsageError('give either -n NAMESPACE or -A, not both');
    const files = readFiles(paths, o.namespace ?? 'default');
    for (const n of files.notes) io.err(`meshd analyze: ${n}\n`);
    for (const e of files.parseErrors) io.err(`meshd analyze: error adding files: ${e}\n`);

    let cluster: Awaited<ReturnType<typeof listCluster>> | undefined;
    if (useKube) {
      const kubeconfig = o.kubeconfig ?? defaultKubeconfig(env);
      if (!o.kubeconfig && !existsSync(kubeconfig)) {
        if (paths.length === 0) throw new UsageError(`no cluster to analyze: no kubeconfig at ${kubeconfig} (set --kubeconfig or $KUBECONFIG), and no files given`);
        io.err(`meshd analyze: no kubeconfig at ${kubeconfig}: analyzing the files alone (--use-kube=false does so without this note)\n`);
        useKube = false;
      } else {
        let server = kubeconfig;
        try {
          const conn = loadKubeConfig(kubeconfig);
          server = conn.server;
          cluster = await listCluster(conn);
        } catch (err) {
          throw new UsageError(`cannot read the cluster at ${server} (kubeconfig ${kubeconfig}): ${(err as Error).message}; fix the kubeconfig, or analyze files alone with --use-kube=false`);
        }
        for (const n of cluster.notes) io.err(`meshd analyze: ${n}\n`);
      }
    } else if (paths.length === 0) {
      throw new UsageError('nothing to analyze: give files or directories, or leave --use-kube on to read the cluster');
    }

    // The files' objects (valid or not) replace the cluster's of the same kind, namespace and name.
    const fromFiles = new Set([...files.objects.map(objectKey), ...files.invalid.map((e) => objectKeyOf(e.kind, e.namespace, e.name))]);
    const objects = [...(cluster?.objects ?? []).filter((x) => !fromFiles.has(objectKey(x))), ...files.objects];
    const invalid = [...(cluster?.invalid ?? []).filter((e) => !fromFiles.has(objectKeyOf(e.kind, e.namespace, e.name))), ...files.invalid];

    const namespace = o.allNamespaces ? undefined : (o.namespace ?? (cluster ? 'default' : undefined));
    if (cluster && namespace !== undefined && !objects.some((x) => x.kind === 'Namespace' && x.metadata.name === namespace)) {
      throw new UsageError(`namespace "${namespace}" not found in the cluster`);
    }
    const meshConfig = o.meshConfigFile !== undefined ? readMeshConfig(o.meshConfigFile) : undefined;
    const all = analyze({ objects, invalid, domain: o.domain, workloadsKnown: cluster !== undefined || objects.some((x) => x.kind === 'Pod'), origins: files.origins, ...(meshConfig ? { meshConfig } : {}) });
    const findings = inScope(all, namespace, cluster !== undefined);
    const shown = findings.filter((f) => atLeast(f.severity, showAt));
    io.out(formatFindings(shown, format, colour && format === 'log'));

    const target = namespace !== undefined ? `namespace: ${namespace}` : cluster || paths.length === 0 ? 'all namespaces' : paths.join(', ');
    if (findings.some((f) => atLeast(f.severity, failAt))) {
      io.err(`Error: Analyzers found issues when analyzing ${target}.\nSee ${DOCS} for more information about causes and resolutions.\n`);
      return EXIT_FINDINGS;
    }
    if (shown.length === 0) {
      const unparsed = files.parseErrors.length;
      io.err(unparsed === 0 ? `\u2714 No validation issues found when analyzing ${target}.\n` : `No validation issues found when analyzing ${target} (but ${unparsed} ${unparsed === 1 ? 'document' : 'documents'} could not be parsed).\n`);
    }
    return files.parseErrors.length > 0 ? EXIT_DATA_ERROR : 0;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`meshd analyze: ${err.message}\n`);
    return EXIT_USAGE;
  }
}

export function analyzeCommand(): Command {
  return new Command('analyze')
    .description('Analyze Istio configuration (the live cluster, YAML files, or files over the cluster) and print validation messages as istioctl does; exits 79 when issues at or above --failure-threshold are found')
    .argument('[files...]', 'YAML files or directories (read recursively) to analyze, over the cluster unless --use-kube=false')
    .option('-n, --namespace <namespace>', 'analyze this namespace (default: "default" with a cluster); objects without a namespace in files go there')
    .option('-A, --all-namespaces', 'analyze all namespaces')
    .option('-k, --use-kube [bool]', 'read the live cluster (--use-kube=false: the files alone)', true)
    .option('--kubeconfig <path>', 'kubeconfig of the cluster (default: $KUBECONFIG, else ~/.kube/config)')
    .option('-o, --output <format>', `output format: ${OUTPUT_FORMATS.join(', ')}`, 'log')
    .option('--failure-threshold <severity>', `the least severity that makes the exit status 79: ${SEVERITIES.join(', ')}`, 'Error')
    .option('--output-threshold <severity>', `the least severity printed: ${SEVERITIES.join(', ')}`, 'Info')
    .option('--color [bool]', 'colour the severities (default: when stdout is a terminal and $TERM is not dumb)')
    .option('--domain <domain>', 'the cluster domain that short host names are completed with', 'cluster.local')
    .option('--meshConfigFile <file>', "the mesh config (MeshConfig YAML) the objects are served with: extensionProviders for AuthorizationPolicy CUSTOM, rootNamespace...")
    .action(async (paths: string[], o: AnalyzeOptions) => {
      process.exitCode = await runAnalyze(paths, o, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), isTTY: process.stdout.isTTY === true });
    });
}

