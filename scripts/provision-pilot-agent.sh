#!/usr/bin/env bash
# Builds, once, Istio's sidecar agent `pilot-agent` for meshd's agent tests, from source fetched
# through the Go module proxy, and caches it under ~/.cache/meshd/pilot-agent-<version>/.
#
#   pilot-agent: istio.io/istio/pilot/cmd/pilot-agent at ISTIO_MODULE_VERSION, built with
#                `go install` (the module's own go.mod and go.sum, no replace directives) and the
#                build tags Istio's release uses for the agent (agent, disable_pgv).
#   bootstrap:   the Envoy bootstrap template the agent renders (tools/packaging/common/
#                envoy_bootstrap.json in the same module version), copied from the module cache
#                next to the binary; in a proxy image it lives at
#                /var/lib/istio/envoy/envoy_bootstrap_tmpl.json.
#
# Istio's release tags are not Go module versions (istio.io/istio@1.x is refused by the proxy);
# the proxy serves pseudo-versions of the main branch, so one of those is pinned below.
# The Go module cache and build cache live in ~/.cache/meshd/go (shared with
# scripts/provision-kube.sh). Idempotent: when the cached binary runs and reports the pinned
# build, nothing is built. Writes KEY=value lines to ~/.cache/meshd/pilot-agent-paths for the
# test fixture (test/support/pilot-agent.ts). Fails loudly ("provision: ERROR: ...", non-zero
# exit) when Go or the module proxy is unavailable or the build fails.
set -euo pipefail

# --- pinned version ----------------------------------------------------------------------------
# istio.io/istio main at commit eed52ebb66ad (2026-08-27; its VERSION file says 1.31).
ISTIO_MODULE_VERSION="v0.0.0-20260827124520-eed52ebb66ad"
ISTIO_MODULE="istio.io/istio"
PILOT_AGENT_PKG="${ISTIO_MODULE}/pilot/cmd/pilot-agent"
BUILD_TAGS="agent,disable_pgv"
GO_MIN_MINOR=26 # the module's go.mod says go 1.26.0

MESHD_CACHE="${HOME}/.cache/meshd"
AGENT_DIR="${MESHD_CACHE}/pilot-agent-${ISTIO_MODULE_VERSION}"
AGENT_BIN="${AGENT_DIR}/pilot-agent"
BOOTSTRAP_TEMPLATE="${AGENT_DIR}/envoy_bootstrap.json"
AGENT_PATHS_FILE="${MESHD_CACHE}/pilot-agent-paths"
GO_ROOT_CACHE="${MESHD_CACHE}/go"
GIT_REVISION="${ISTIO_MODULE_VERSION##*-}"

log() { echo "provision: $*"; }
die() {
  echo "provision: ERROR: $*" >&2
  exit 1
}

now_ms() { date +%s%3N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# Environment for every go command, as in scripts/provision-kube.sh. `go install pkg@version`
# refuses -mod=mod (it always uses the named module's go.mod), so GOFLAGS keeps only
# -buildvcs=false here.
go_env() {
  env GOPATH="${GO_ROOT_CACHE}" \
    GOMODCACHE="${GO_ROOT_CACHE}/pkg/mod" \
    GOCACHE="${GO_ROOT_CACHE}/build-cache" \
    GOFLAGS="-buildvcs=false" \
    GOTOOLCHAIN=local \
    CGO_ENABLED=0 \
    "$@"
}

# Succeeds when the cached binary runs and reports the pinned revision.
agent_ok() {
  local out
  [[ -x "${AGENT_BIN}" && -s "${BOOTSTRAP_TEMPLATE}" ]] || return 1
  # stderr carries an unrelated log line (automemlimit); the version is on stdout.
  out="$("${AGENT_BIN}" version 2>/dev/null)" || return 1
  [[ "${out}" == *"GitRevision:\"${GIT_REVISION}\""* ]]
}

check_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go is not installed (no 'go' on PATH); pilot-agent is built from source and needs Go >= 1.${GO_MIN_MINOR}"
  local v minor
  v="$(go env GOVERSION 2>/dev/null)" || die "'go env GOVERSION' fails: is the Go installation broken?"
  minor="$(sed -nE 's/^go1\.([0-9]+).*/\1/p' <<<"${v}")"
  [[ -n "${minor}" && "${minor}" -ge "${GO_MIN_MINOR}" ]] ||
    die "Go ${v} is too old: ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} needs Go >= 1.${GO_MIN_MINOR}"
}

# Downloads (or finds cached) the pinned module; prints its directory in the module cache.
download_module() {
  local out dir
  if ! out="$(cd "${AGENT_DIR}" && go_env go mod download -json "${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}" 2>&1)"; then
    die "cannot fetch ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION} from the Go module proxy ($(go env GOPROXY)): $(printf '%s' "${out}" | grep -m1 -E '"Error"|error|Error' || printf '%s' "${out}" | tail -n 3)"
  fi
  dir="$(sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' <<<"${out}")"
  [[ -n "${dir}" && -d "${dir}" ]] || die "'go mod download' did not report a directory for ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}: ${out}"
  printf '%s\n' "${dir}"
}

build_agent() {
  local moddir="$1" start gobin log_file version
  start="$(now_ms)"
  version="$(tr -d '[:space:]' <"${moddir}/VERSION" 2>/dev/null || true)"
  version="${version:-unknown}-dev"
  gobin="${AGENT_DIR}/gobin.tmp.$$"
  log_file="${AGENT_DIR}/build.log"
  rm -rf "${gobin}"
  mkdir -p "${gobin}"
  log "building pilot-agent ${version} (${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}, tags ${BUILD_TAGS}; the first build downloads its modules and takes several minutes)"
  local v="istio.io/istio/pkg/version"
  if ! (cd "${AGENT_DIR}" && go_env GOBIN="${gobin}" nice -n 10 go install -trimpath -tags "${BUILD_TAGS}" \
    -ldflags "-s -w -X ${v}.buildVersion=${version} -X ${v}.buildGitRevision=${GIT_REVISION} -X ${v}.buildStatus=Clean -X ${v}.buildTag=${ISTIO_MODULE_VERSION} -X ${v}.buildHub=meshd.local -X ${v}.buildOS=$(go env GOOS) -X ${v}.buildArch=$(go env GOARCH)" \
    "${PILOT_AGENT_PKG}@${ISTIO_MODULE_VERSION}") >"${log_file}" 2>&1; then
    rm -rf "${gobin}"
    die "building ${PILOT_AGENT_PKG}@${ISTIO_MODULE_VERSION} failed (full log: ${log_file}):
$(tail -n 25 "${log_file}")"
  fi
  [[ -x "${gobin}/pilot-agent" ]] || die "go install succeeded but ${gobin}/pilot-agent is missing"
  mv -f "${gobin}/pilot-agent" "${AGENT_BIN}"
  rm -rf "${gobin}"
  log "built pilot-agent in $(elapsed "${start}" "$(now_ms)")s"
}

copy_bootstrap_template() {
  local moddir="$1" src
  src="${moddir}/tools/packaging/common/envoy_bootstrap.json"
  [[ -s "${src}" ]] || die "the bootstrap template ${src} is missing from ${ISTIO_MODULE}@${ISTIO_MODULE_VERSION}"
  cp -f "${src}" "${BOOTSTRAP_TEMPLATE}.tmp.$$"
  chmod 0644 "${BOOTSTRAP_TEMPLATE}.tmp.$$"
  mv -f "${BOOTSTRAP_TEMPLATE}.tmp.$$" "${BOOTSTRAP_TEMPLATE}"
}

write_paths() {
  local tmp="${AGENT_PATHS_FILE}.tmp.$$"
  {
    echo "PILOT_AGENT=${AGENT_BIN}"
    echo "ENVOY_BOOTSTRAP_TEMPLATE=${BOOTSTRAP_TEMPLATE}"
    echo "ISTIO_MODULE_VERSION=${ISTIO_MODULE_VERSION}"
  } >"${tmp}"
  mv -f "${tmp}" "${AGENT_PATHS_FILE}"
}

provision_pilot_agent() {
  local start moddir
  start="$(now_ms)"
  mkdir -p "${AGENT_DIR}"
  # One provisioner at a time per version: a second one waits, then finds the binary built.
  exec {lock_fd}>"${AGENT_DIR}/.lock"
  command -v flock >/dev/null 2>&1 && flock "${lock_fd}"

  if agent_ok; then
    write_paths
    log "pilot-agent ${ISTIO_MODULE_VERSION} already built in ${AGENT_DIR} (checked in $(elapsed "${start}" "$(now_ms)")s; paths in ${AGENT_PATHS_FILE})"
    return 0
  fi

  check_go
  mkdir -p "${GO_ROOT_CACHE}"
  moddir="$(download_module)"
  copy_bootstrap_template "${moddir}"
  build_agent "${moddir}"
  agent_ok ||
    die "built ${AGENT_BIN} but 'pilot-agent version' says '$("${AGENT_BIN}" version 2>&1 | tail -n 3)', not revision ${GIT_REVISION}"
  write_paths
  log "pilot-agent: $("${AGENT_BIN}" version 2>/dev/null | head -n 1) (built in $(elapsed "${start}" "$(now_ms)")s; paths in ${AGENT_PATHS_FILE})"
}

main() {
  provision_pilot_agent
}

# Sourced (by scripts/provision-istioctl.sh, for the pinned version and the Go helpers): define only.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
