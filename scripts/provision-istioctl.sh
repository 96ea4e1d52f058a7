#!/usr/bin/env bash
# Builds, once, Istio's `istioctl` for meshd's istioctl tests (test/e2e/istioctl.test.ts), exactly
# as scripts/provision-pilot-agent.sh builds pilot-agent: the same module (istio.io/istio), the
# same pinned pseudo-version and Go caches, with the build tags Istio's release uses for
# istioctl (vtprotobuf, disable_pgv). Cached as ~/.cache/meshd/istioctl-<version>/istioctl; the
# path goes to ~/.cache/meshd/istioctl-paths. Idempotent: a cached binary that reports the
# pinned revision is kept. Fails loudly when Go or the module proxy is unavailable.
# Measured here: 339 s from warm module caches (pilot-agent and kube already built), on 2 busy cores.
set -euo pipefail

# The pinned version, go_env, check_go, download_module, log, die, now_ms, elapsed.
# shellcheck source=provision-pilot-agent.sh
source "$(dirname "${BASH_SOURCE[0]}")/provision-pilot-agent.sh"

ISTIOCTL_PKG="${ISTIO_MODULE}/istioctl/cmd/istioctl"
ISTIOCTL_TAGS="vtprotobuf,disable_pgv"
ISTIOCTL_DIR="${MESHD_CACHE}/istioctl-${ISTIO_MODULE_VERSION}"
ISTIOCTL_BIN="${ISTIOCTL_DIR}/istioctl"
ISTIOCTL_PATHS_FILE="${MESHD_CACHE}/istioctl-paths"

istioctl_ok() {
  local out
  [[ -x "${ISTIOCTL_BIN}" ]] || return 1
  out="$("${ISTIOCTL_BIN}" version --remote=false -o json 2>/dev/null)" || return 1
  [[ "${out}" == *"\"revision\": \"${GIT_REVISION}\""* ]]
}

build_istioctl() {
  local moddir="$1" start gobin version v="istio.io/istio/pkg/version"
  start="$(now_ms)"
  version="$(tr -d '[:space:]' <"${moddir}/VERSION" 2>/dev/null || true)"
  version="${version:-unknown}-dev"
  gobin="${ISTIOCTL_DIR}/gobin.tmp.$$"
  rm -rf "${gobin}" && mkdir -p "${gobin}"
  log "building istioctl ${version} (${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}, tags ${ISTIOCTL_TAGS}; takes several minutes)"
  if ! (cd "${ISTIOCTL_DIR}" && go_env GOBIN="${gobin}" nice -n 10 go install -trimpath -tags "${ISTIOCTL_TAGS}" \
    -ldflags "-s -w -X ${v}.buildVersion=${version} -X ${v}.buildGitRevision=${GIT_REVISION} -X ${v}.buildStatus=Clean -X ${v}.buildTag=${ISTIO_MODULE_VERSION}" \
    "${ISTIOCTL_PKG}@${ISTIO_MODULE_VERSION}") >"${ISTIOCTL_DIR}/build.log" 2>&1; then
    rm -rf "${gobin}"
    die "building ${ISTIOCTL_PKG}@${ISTIO_MODULE_VERSION} failed (full log: ${ISTIOCTL_DIR}/build.log):
$(tail -n 25 "${ISTIOCTL_DIR}/build.log")"
  fi
  mv -f "${gobin}/istioctl" "${ISTIOCTL_BIN}"
  rm -rf "${gobin}"
  log "built istioctl in $(elapsed "${start}" "$(now_ms)")s"
}

provision_istioctl() {
  mkdir -p "${ISTIOCTL_DIR}" "${AGENT_DIR}"
  exec {istioctl_lock}>"${ISTIOCTL_DIR}/.lock"
  command -v flock >/dev/null 2>&1 && flock "${istioctl_lock}"
  if ! istioctl_ok; then
    check_go
    mkdir -p "${GO_ROOT_CACHE}"
    build_istioctl "$(download_module)"
    istioctl_ok || die "built ${ISTIOCTL_BIN} but it does not report revision ${GIT_REVISION}: $("${ISTIOCTL_BIN}" version --remote=false 2>&1 | tail -n 3)"
  fi
  printf 'ISTIOCTL=%s\nISTIO_MODULE_VERSION=%s\n' "${ISTIOCTL_BIN}" "${ISTIO_MODULE_VERSION}" >"${ISTIOCTL_PATHS_FILE}.tmp.$$"
  mv -f "${ISTIOCTL_PATHS_FILE}.tmp.$$" "${ISTIOCTL_PATHS_FILE}"
  log "istioctl: $("${ISTIOCTL_BIN}" version --remote=false 2>/dev/null) (path in ${ISTIOCTL_PATHS_FILE})"
}

provision_istioctl
