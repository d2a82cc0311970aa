# Shared set-up for scripts/install, scripts/test and scripts/demo: installs what
# is missing.
# Sourced, not run.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# What a user of jhfs needs: libfuse 3 (mfusepy loads libfuse3.so.3),
# fusermount3 (and mount.fuse3, for mount(8)), and a Python that makes virtual
# environments (Debian keeps ensurepip in python3-venv).
ensure_user_packages() {
    local missing=()
    user_packages_missing
    install_packages "${missing[@]}"
}

user_packages_missing() {
    ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.3' || missing+=(libfuse3-3)
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    "${PYTHON:-python3}" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
}

install_packages() {
    if [ $# -gt 0 ]; then
        echo "== installing system packages: $*"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
    fi
    if [ ! -e /dev/fuse ]; then
        echo "error: /dev/fuse is missing; load the fuse kernel module (modprobe fuse)" >&2
        return 1
    fi
}

# The user's packages, and getfattr, curl, rsync and jq for the tests (they
# copy and script jobs as users do).
ensure_system_packages() {
    local missing=()
    user_packages_missing
    command -v getfattr >/dev/null || missing+=(attr)
    command -v curl >/dev/null || missing+=(curl)
    command -v rsync >/dev/null || missing+=(rsync)
    command -v jq >/dev/null || missing+=(jq)
    install_packages "${missing[@]}"
}

# A virtual environment in .venv with jhfs installed (editable) and the given
# extras; reinstalled when pyproject.toml changes.
ensure_venv() {
    local extras="${1:-}"
    local python="${PYTHON:-python3}"
    local stamp=".venv/.jhfs-installed-${extras:-base}"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing jhfs${extras:+[$extras]} into .venv"
        .venv/bin/pip install -q --upgrade pip >/dev/null
        .venv/bin/pip install -q -e ".${extras:+[$extras]}"
        touch "$stamp"
    fi
}
