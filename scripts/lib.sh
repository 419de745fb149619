# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it: `source scripts/lib.sh`.
# Safe under `set -euo pipefail`; defines functions only (plus ROOT).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mERROR:\033[0m %s\n' "$*" >&2; exit 1; }

# _py_ok PYTHON: succeed (and print sys.executable) if PYTHON runs and is >= 3.12.
# Running it matters: a pyenv shim exists on PATH even when that version is not selected.
# With MINOR (e.g. 3.12) as second argument: succeed only for exactly that version.
_py_ok() {
    "$1" -c 'import sys
want = sys.argv[1]
ok = sys.version_info >= (3, 12) if not want else "%d.%d" % sys.version_info[:2] == want
assert ok
print(sys.executable)' "${2:-}" 2>/dev/null
}

# find_python: print the path of a Python >= 3.12, preferring 3.13.
# find_python 3.12: print the path of exactly a Python 3.12.
find_python() {
    local cand roots=() root want="${1:-}"
    for cand in python3.13 python3.12; do
        if command -v "$cand" >/dev/null 2>&1 && _py_ok "$cand" "$want"; then return 0; fi
    done
    if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)/versions"); fi
    roots+=("$HOME/.pyenv/versions" "/root/.pyenv/versions")
    for root in "${roots[@]}"; do
        # Newest first, so 3.13.x wins over 3.12.x.
        for cand in $(ls -d "$root"/3.1[23]* 2>/dev/null | sort -rV); do
            if [[ -x "$cand/bin/python" ]] && _py_ok "$cand/bin/python" "$want"; then return 0; fi
        done
    done
    if command -v python3 >/dev/null 2>&1 && _py_ok python3 "$want"; then return 0; fi
    die "no Python ${want:->= 3.12} found (looked for python3.13, python3.12, pyenv versions, python3).
       Install one, e.g. 'pyenv install 3.13' or 'apt-get install python3.13'."
}

# apt_install PKG...: install the Debian packages that are not installed yet.
apt_install() {
    local missing=() pkg sudo=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get"
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    log "apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
        || die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# _sha256 FILE...: print the SHA-256 of the concatenated FILEs (sha256sum, or macOS's shasum).
_sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        cat "$@" | sha256sum | cut -d' ' -f1
    else
        cat "$@" | shasum -a 256 | cut -d' ' -f1
    fi
}

# ensure_venv [PROFILE]: make $VENV (default $ROOT/.venv, Python >= 3.12) and install this
# checkout into it, again when pyproject.toml changes.
#   ensure_venv        the test set-up (make test, .ci/run): the Debian packages the suite needs
#                      (MariaDB headers, Chromium, faketime; apt-get) and '.[dev]'
#   ensure_venv demo   the demo (make demo): '.[demo]' only (Django, croniter, django-environ
#                      for testproject/), with pip alone: no apt-get, no browser, no drivers
# A venv set up for the tests also serves the demo (dev includes demo).
ensure_venv() {
    local profile="${1:-dev}" venv="${VENV:-$ROOT/.venv}" py stamp want have out
    case "$profile" in
        dev) apt_install libmariadb-dev pkg-config chromium faketime ;;
        demo) ;;
        *) die "ensure_venv: unknown profile $profile (dev or demo)" ;;
    esac
    if ! [[ -x "$venv/bin/python" ]] || ! _py_ok "$venv/bin/python" >/dev/null; then
        py="$(find_python)"
        log "creating $venv with $py"
        rm -rf "$venv"
        "$py" -m venv "$venv" || die "could not create $venv"
    fi
    stamp="$venv/.stamp"
    want="$(_sha256 "$ROOT/pyproject.toml")"
    have="$(cat "$stamp" 2>/dev/null || true)"
    # The stamp is "<hash>" (dev, as before) or "<hash> demo".
    [[ "$have" == "$want" ]] && return 0
    [[ "$profile" == demo && "$have" == "$want demo" ]] && return 0
    log "installing django-jobs[$profile] into $venv"
    if ! out="$(cd "$ROOT" && "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        -e ".[$profile]" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "pip install -e '.[$profile]' failed"
    fi
    if [[ "$profile" == dev ]]; then echo "$want" >"$stamp"; else echo "$want demo" >"$stamp"; fi
}

# ensure_compat_venv NAME PYTHON PROJECT [REQUIREMENT...]: .venv-NAME with exactly Python PYTHON
# (e.g. 3.12), this checkout installed editable as PROJECT (e.g. '.[dev]') plus REQUIREMENT...
# (e.g. 'django~=6.0.0'): a matrix row on another Django. Rebuilt when pyproject.toml or the
# arguments change.
#   ensure_compat_venv django60 3.12 '.[dev]' 'django~=6.0.0'
#   ensure_compat_venv django52 3.12 '.[dev,django52]' 'django~=5.2.0'
ensure_compat_venv() {
    local name="$1" pyver="$2" project="$3" venv="$ROOT/.venv-$1" py stamp want out
    shift 3
    stamp="$venv/.stamp"
    want="$(_sha256 "$ROOT/pyproject.toml" <(echo "$pyver $project $*"))"
    [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null || true)" == "$want" ]] && return 0
    py="$(find_python "$pyver")"
    log "creating .venv-$name with $py, $project $* (matrix row $name)"
    rm -rf "$venv"
    "$py" -m venv "$venv" || die "could not create $venv"
    if ! out="$(cd "$ROOT" && "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        -e "$project" "$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "pip install into .venv-$name failed"
    fi
    echo "$want" >"$stamp"
}
