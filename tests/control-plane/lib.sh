# Shared helpers for the control-plane scripts. Sourced, not executed.
# shellcheck shell=bash

CP_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
CP_REPO_ROOT="$(cd "$CP_HERE/../.." && pwd)"
# shellcheck source=versions.env
source "$CP_HERE/versions.env"
: "${K8S_VERSION:?versions.env must set K8S_VERSION}"
: "${HELM_VERSION:?versions.env must set HELM_VERSION}"

CP_CACHE="${QAO_CONTROL_PLANE_CACHE:-$CP_REPO_ROOT/target/control-plane}"
# shellcheck disable=SC2034 # used by the scripts that source this file
CP_BIN="$CP_CACHE/$K8S_VERSION/bin"

cp_log() { printf '[control-plane] %s\n' "$*" >&2; }
cp_die() { printf '[control-plane] ERROR: %s\n' "$*" >&2; exit 1; }
