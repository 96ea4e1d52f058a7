// kubectl, for tests that compare meshd with it (`kubectl kustomize`) or drive the test
// apiserver with it. Never optional: when it is missing the test fails and says where it looked.
import { delimiter, join } from 'node:path';
import { isExecutable } from './kube.js';

/** $MESHD_KUBECTL, else kubectl on PATH, else /usr/bin/kubectl; throws naming each place when none is there. */
export function kubectlBinary(): string {
  const fromEnv = process.env.MESHD_KUBECTL;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isExecutable(fromEnv)) throw new Error(`MESHD_KUBECTL=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const path = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const dir of [...path, '/usr/bin', '/usr/local/bin']) {
    const p = join(dir, 'kubectl');
    if (isExecutable(p)) return p;
  }
  throw new Error(
    `kubectl not found (looked at $MESHD_KUBECTL (unset), every directory on PATH, /usr/bin and /usr/local/bin). ` +
      'These tests compare meshd with kubectl kustomize: install kubectl (https://kubernetes.io/docs/tasks/tools/) or set MESHD_KUBECTL to its path.',
  );
}
