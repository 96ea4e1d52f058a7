// `meshd kube-inject` as a pure function of YAML text: like `istioctl kube-inject`, it injects
// Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
// ReplicationControllers, Jobs and CronJobs (also inside a `List`), leaving every other object
// as it was, and writes the documents back in order, each followed by `---`.
import { CST, Parser, parseAllDocuments, stringify } from 'yaml';
import { InjectionError } from './annotations.js';
import { decideForKubeInject, workloadOfPod } from './decide.js';
import { injectPodTemplate } from './injector.js';
import { isRecord, type Pod, type PodTemplate, type WorkloadMeta } from './k8s.js';
import type { InjectorSettings } from './settings.js';

/** Kinds whose `spec.template` is a pod template. */
const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job']);

export interface KubeInjectNote {
  /** `Kind namespace/name`. */
  object: string;
  injected: boolean;
  reason: string;
}

export interface KubeInjectObjectResult {
  /** The object, injected where it holds a pod (a new object), or the input itself. */
  object: unknown;
  changed: boolean;
  notes: KubeInjectNote[];
}

function describe(kind: string, namespace: string, name: string): string {
  return `${kind} ${namespace}/${name || '(unnamed)'}`;
}

function injectTemplate(template: PodTemplate, workload: WorkloadMeta, settings: InjectorSettings, label: string): { template: PodTemplate; note: KubeInjectNote } {
  const d = decideForKubeInject(template.metadata ?? {}, template.spec ?? {}, workload.namespace, settings);
  if (!d.inject) return { template, note: { object: label, injected: false, reason: d.reason } };
  try {
    return { template: injectPodTemplate(template, workload, settings), note: { object: label, injected: true, reason: d.reason } };
  } catch (err) {
    if (err instanceof InjectionError) throw new Error(`${label}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Injects one object (a Pod, a workload, a List of them). Throws, naming the object, when an
 * annotation has a bad value.
 */
export function kubeInjectObject(obj: unknown, settings: InjectorSettings): KubeInjectObjectResult {
  if (!isRecord(obj)) return { object: obj, changed: false, notes: [] };
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : '';
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
  const label = describe(kind, namespace, name);

  if (kind === 'List' && Array.isArray(obj.items)) {
    const notes: KubeInjectNote[] = [];
    let changed = false;
    const items = obj.items.map((item) => {
      const r = kubeInjectObject(item, settings);
      notes.push(...r.notes);
      changed ||= r.changed;
      return r.object;
    });
    return changed ? { object: { ...obj, items }, changed, notes } : { object: obj, changed, notes };
  }

  if (kind === 'Pod') {
    const pod = obj as Pod;
    const { template, note } = injectTemplate({ metadata: pod.metadata ?? {}, spec: pod.spec ?? {} }, workloadOfPod(pod, namespace), settings, label);
    if (!note.injected) return { object: obj, changed: false, notes: [note] };
    return { object: { ...obj, metadata: template.metadata, spec: template.spec }, changed: true, notes: [note] };
  }

  let holder: Record<string, unknown> | undefined; // the object whose `template` is the pod template
  if (TEMPLATE_KINDS.has(kind) && isRecord(obj.spec)) holder = obj.spec;
  else if (kind === 'CronJob' && isRecord(obj.spec) && isRecord(obj.spec.jobTemplate) && isRecord(obj.spec.jobTemplate.spec)) holder = obj.spec.jobTemplate.spec;
  if (!holder || !isRecord(holder.template)) return { object: obj, changed: false, notes: [] };

  const workload: WorkloadMeta = { name, namespace, kind, apiVersion };
  const { template, note } = injectTemplate(holder.template as PodTemplate, workload, settings, label);
  if (!note.injected) return { object: obj, changed: false, notes: [note] };
  const out = structuredClone(obj);
  const outHolder = kind === 'CronJob' ? ((out.spec as Record<string, Record<string, Record<string, unknown>>>).jobTemplate!.spec as Record<string, unknown>) : (out.spec as Record<string, unknown>);
  outHolder.template = template;
  return { object: out, changed: true, notes: [note] };
}

/** The document start marker (`---`) off the front of a document's source. */
function withoutDocStart(src: string): string {
  const line = /^---[ \t]*(#[^\n]*)?(\r?\n|$)/.exec(src);
  if (line) return src.slice(line[0].length);
  const inline = /^---[ \t]+/.exec(src);
  return inline ? src.slice(inline[0].length) : src;
}

/**
 * Each document's exact source text (with the comments before it, without its `---`), in
 * order; undefined where that cannot be told apart cleanly (directives), so the caller
 * re-serialises instead.
 */
function documentSources(text: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  let pending = '';
  for (const token of new Parser().parse(text)) {
    if (token.type === 'document') {
      out.push(/^%/m.test(pending) ? undefined : pending + withoutDocStart(CST.stringify(token)));
      pending = '';
    } else if (token.type !== 'doc-end') {
      pending += CST.stringify(token);
    }
  }
  return out;
}

export interface KubeInjectResult {
  /** The documents, in order, each followed by `---`. */
  yaml: string;
  notes: KubeInjectNote[];
}

/**
 * Injects every pod in a multi-document YAML text. Documents not injected come out as they
 * went in, byte for byte (comments included); injected ones are re-serialised. Throws on YAML that does not
 * parse, naming the document (counted from 0).
 */
export function kubeInjectYaml(text: string, settings: InjectorSettings): KubeInjectResult {
  const docs = parseAllDocuments(text);
  const sources = documentSources(text);
  const exact = sources.length === docs.length;
  const out: string[] = [];
  const notes: KubeInjectNote[] = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length) throw new Error(`document ${i}: ${doc.errors[0]!.message.split('\n')[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    let r: KubeInjectObjectResult;
    try {
      r = kubeInjectObject(value, settings);
    } catch (err) {
      throw new Error(`document ${i}: ${(err as Error).message}`, { cause: err });
    }
    notes.push(...r.notes);
    if (r.changed) {
      out.push(stringify(r.object, { aliasDuplicateObjects: false, lineWidth: 0 }));
    } else if (exact && sources[i] !== undefined) {
      // Untouched: the document exactly as it came, comments and formatting included.
      out.push(sources[i]!);
    } else {
      doc.directives.docStart = null;
      out.push(doc.toString({ lineWidth: 0 }));
    }
  });
  return { yaml: out.map((d) => `${d.endsWith('\n') ? d : `${d}\n`}---\n`).join(''), notes };
}
