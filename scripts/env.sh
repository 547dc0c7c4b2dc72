# Sourced by scripts/*.sh: make .venv with tinygrad_cnn and its extras installed.
VENV="${TINYGRAD_CNN_VENV:-$PWD/.venv}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=""
    command -v dot >/dev/null || need="$need graphviz"
    [ -d /usr/share/datasets/fashion-mnist ] || need="$need dataset-fashion-mnist"
    if [ -n "$need" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null \
            || echo "warning: could not install Debian packages:$need" >&2
    fi
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,examples]"
