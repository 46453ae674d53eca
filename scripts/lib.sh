# Shared by the scripts: install a Debian package when its command is missing.
need() { # need COMMAND PACKAGE...
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "installing $* (for $cmd)" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "$cmd is missing: apt-get install -y $*" >&2; exit 1; }
        sudo=sudo
    fi
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 || { echo "could not install $*" >&2; exit 1; }
}
