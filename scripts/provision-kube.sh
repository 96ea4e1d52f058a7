#!/usr/bin/env bash
# Builds, once, a real kube-apiserver and etcd for meshd's Kubernetes tests, from source
# fetched through the Go module proxy, and caches them under ~/.cache/meshd/kube-<version>/.
#
#   kube-apiserver: k8s.io/kubernetes/cmd/kube-apiserver at K8S_VERSION, built in a throwaway
#                   module that requires k8s.io/kubernetes and replaces each staging module
#                   (required at v0.0.0 by k8s.io/kubernetes) with its published v0.x release.
#   etcd:           a three-line main calling go.etcd.io/etcd/server/v3/etcdmain.Main.
#
# The Go module cache and build cache live in ~/.cache/meshd/go so later builds are quick.
# Idempotent: when both cached binaries exist and report the pinned versions, nothing is built.
# Binaries are built under a temporary name and renamed, so an interrupted build never looks
# complete. Writes the binary paths to ~/.cache/meshd/kube-paths (KEY=value lines) for the
# test fixture (test/support/kube.ts). Fails loudly ("provision: ERROR: ...", non-zero exit)
# when Go or the module proxy is unavailable or a build fails.
set -euo pipefail

# --- pinned versions ---------------------------------------------------------------------------
K8S_VERSION="1.36.3"         # k8s.io/kubernetes v1.36.3 (its go.mod says go 1.26.0)
K8S_STAGING_VERSION="0.36.3" # the matching release of every k8s.io staging module
ETCD_VERSION="3.6.16"        # go.etcd.io/etcd/server/v3 v3.6.16
GO_MIN_MINOR=26              # both go.mod files above need go >= 1.26

# Every staging module listed in k8s.io/kubernetes v1.36.3's go.mod (its replace block points
# them at ./staging/src/...; the require block asks for v0.0.0, which does not exist upstream).
K8S_STAGING_MODULES=(
  api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice
  externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl
  kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
  sample-controller streaming
)

MESHD_CACHE="${HOME}/.cache/meshd"
KUBE_DIR="${MESHD_CACHE}/kube-${K8S_VERSION}"
KUBE_APISERVER_BIN="${KUBE_DIR}/kube-apiserver"
ETCD_BIN="${KUBE_DIR}/etcd"
KUBE_PATHS_FILE="${MESHD_CACHE}/kube-paths"
GO_ROOT_CACHE="${MESHD_CACHE}/go"

log() { echo "provision: $*"; }
die() {
  echo "provision: ERROR: $*" >&2
  exit 1
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
# Seconds, one decimal, between two now_ms values.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# Environment for every go command: a module and build cache that persist across runs, module
# resolution allowed to update go.mod/go.sum, no cgo, no automatic toolchain downloads.
go_env() {
  env GOPATH="${GO_ROOT_CACHE}" \
    GOMODCACHE="${GO_ROOT_CACHE}/pkg/mod" \
    GOCACHE="${GO_ROOT_CACHE}/build-cache" \
    GOFLAGS="-mod=mod -buildvcs=false" \
    GOTOOLCHAIN=local \
    CGO_ENABLED=0 \
    "$@"
}

kube_apiserver_ok() {
  local out
  [[ -x "${KUBE_APISERVER_BIN}" ]] || return 1
  out="$("${KUBE_APISERVER_BIN}" --version 2>&1)" || return 1
  [[ "${out}" == "Kubernetes v${K8S_VERSION}" ]]
}

etcd_ok() {
  local out
  [[ -x "${ETCD_BIN}" ]] || return 1
  out="$("${ETCD_BIN}" --version 2>&1)" || return 1
  [[ "${out}" == *"etcd Version: ${ETCD_VERSION}"* ]]
}

# Dies unless a Go toolchain new enough for the pinned modules is on PATH.
check_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go is not installed (no 'go' on PATH); kube-apiserver and etcd are built from source and need Go >= 1.${GO_MIN_MINOR}"
  local v minor
  v="$(go env GOVERSION 2>/dev/null)" || die "'go env GOVERSION' fails: is the Go installation broken?"
  minor="$(sed -nE 's/^go1\.([0-9]+).*/\1/p' <<<"${v}")"
  [[ -n "${minor}" && "${minor}" -ge "${GO_MIN_MINOR}" ]] ||
    die "Go ${v} is too old: k8s.io/kubernetes v${K8S_VERSION} and etcd v${ETCD_VERSION} need Go >= 1.${GO_MIN_MINOR}"
}

# Dies unless the module proxy serves the pinned top-level modules (or they are cached already).
check_module_proxy() {
  local dir="$1" out mod
  for mod in "k8s.io/kubernetes@v${K8S_VERSION}" "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"; do
    if ! out="$(cd "${dir}" && go_env go mod download -json "${mod}" 2>&1)"; then
      die "cannot fetch ${mod} from the Go module proxy ($(go env GOPROXY)): $(printf '%s' "${out}" | grep -m1 -E '"Error"|error|Error' || printf '%s' "${out}" | tail -n 3)"
    fi
  done
}

# go_build DIR OUTPUT PACKAGE [LDFLAGS]: builds PACKAGE in module DIR into OUTPUT.tmp.PID, then
# renames it to OUTPUT.
go_build() {
  local dir="$1" output="$2" pkg="$3" ldflags="${4:-}" tmp log_file
  tmp="${output}.tmp.$$"
  log_file="${dir}/build.log"
  rm -f "${tmp}"
  if ! (cd "${dir}" && go_env nice -n 10 go build -trimpath -ldflags "-s -w ${ldflags}" -o "${tmp}" "${pkg}") >"${log_file}" 2>&1; then
    rm -f "${tmp}"
    die "building ${pkg} failed (full log: ${log_file}):
$(tail -n 25 "${log_file}")"
  fi
  mv -f "${tmp}" "${output}"
}

build_kube_apiserver() {
  local dir="${KUBE_DIR}/src/kube-apiserver" m start
  start="$(now_ms)"
  rm -rf "${dir}"
  mkdir -p "${dir}"
  {
    echo "// Generated by scripts/provision-kube.sh: builds k8s.io/kubernetes/cmd/kube-apiserver."
    echo "module meshd.local/kube-apiserver"
    echo
    echo "go 1.${GO_MIN_MINOR}.0"
    echo
    echo "godebug default=go1.${GO_MIN_MINOR}"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo
    echo "replace ("
    for m in "${K8S_STAGING_MODULES[@]}"; do
      echo "	k8s.io/${m} => k8s.io/${m} v${K8S_STAGING_VERSION}"
    done
    echo ")"
  } >"${dir}/go.mod"
  log "building kube-apiserver v${K8S_VERSION} (the first build downloads ~800 MB of modules and takes several minutes)"
  local minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  go_build "${dir}" "${KUBE_APISERVER_BIN}" k8s.io/kubernetes/cmd/kube-apiserver \
    "-X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
  kube_apiserver_ok ||
    die "built ${KUBE_APISERVER_BIN} but '--version' says '$("${KUBE_APISERVER_BIN}" --version 2>&1 | head -n 1)', not 'Kubernetes v${K8S_VERSION}'"
  log "built kube-apiserver in $(elapsed "${start}" "$(now_ms)")s"
}

build_etcd() {
  local dir="${KUBE_DIR}/src/etcd" start
  start="$(now_ms)"
  rm -rf "${dir}"
  mkdir -p "${dir}"
  cat >"${dir}/go.mod" <<EOF
// Generated by scripts/provision-kube.sh: builds etcd from go.etcd.io/etcd/server/v3.
module meshd.local/etcd

go 1.${GO_MIN_MINOR}.0

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
EOF
  cat >"${dir}/main.go" <<'EOF'
// Command etcd runs the etcd server, exactly as the upstream etcd binary does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  log "building etcd v${ETCD_VERSION}"
  go_build "${dir}" "${ETCD_BIN}" .
  etcd_ok ||
    die "built ${ETCD_BIN} but '--version' says '$("${ETCD_BIN}" --version 2>&1 | head -n 1)', not 'etcd Version: ${ETCD_VERSION}'"
  log "built etcd in $(elapsed "${start}" "$(now_ms)")s"
}

write_paths() {
  local tmp="${KUBE_PATHS_FILE}.tmp.$$"
  {
    echo "KUBE_APISERVER=${KUBE_APISERVER_BIN}"
    echo "ETCD=${ETCD_BIN}"
    echo "KUBE_VERSION=v${K8S_VERSION}"
    echo "ETCD_VERSION=${ETCD_VERSION}"
  } >"${tmp}"
  mv -f "${tmp}" "${KUBE_PATHS_FILE}"
}

provision_kube() {
  local start
  start="$(now_ms)"
  mkdir -p "${KUBE_DIR}"
  # One provisioner at a time per version: a second one waits, then finds the binaries built.
  exec {lock_fd}>"${KUBE_DIR}/.lock"
  command -v flock >/dev/null 2>&1 && flock "${lock_fd}"

  local need_apiserver=0 need_etcd=0
  kube_apiserver_ok || need_apiserver=1
  etcd_ok || need_etcd=1
  if ((need_apiserver == 0 && need_etcd == 0)); then
    write_paths
    log "kube-apiserver v${K8S_VERSION} and etcd v${ETCD_VERSION} already built in ${KUBE_DIR} (checked in $(elapsed "${start}" "$(now_ms)")s; paths in ${KUBE_PATHS_FILE})"
    return 0
  fi

  check_go
  mkdir -p "${GO_ROOT_CACHE}" "${KUBE_DIR}/src"
  local probe="${KUBE_DIR}/src/probe"
  rm -rf "${probe}" && mkdir -p "${probe}"
  printf 'module meshd.local/probe\n\ngo 1.%s.0\n' "${GO_MIN_MINOR}" >"${probe}/go.mod"
  check_module_proxy "${probe}"
  rm -rf "${probe}"

  ((need_etcd == 0)) || build_etcd
  ((need_apiserver == 0)) || build_kube_apiserver
  write_paths
  log "kube: $("${KUBE_APISERVER_BIN}" --version 2>&1), $("${ETCD_BIN}" --version 2>&1 | head -n 1) (built in $(elapsed "${start}" "$(now_ms)")s; paths in ${KUBE_PATHS_FILE})"
}

main() {
  provision_kube
}

main "$@"
