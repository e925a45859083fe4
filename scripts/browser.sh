# Sourced by scripts/test: installs what the browser test needs, if missing: Debian's
# chromium (apt) and playwright-core (npm, into e2e/node_modules, version from e2e/package.json).
install_browser_tools() {
    if ! command -v chromium >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            echo "installing chromium with apt-get"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "chromium is missing and apt-get is not available: the browser test will say so"
            return 0
        fi
    fi
    if ! command -v node >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            echo "installing nodejs and npm with apt-get"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        fi
    fi
    if [ ! -d e2e/node_modules/playwright-core ]; then
        echo "installing playwright-core with npm into e2e/node_modules"
        (cd e2e && npm install --no-package-lock --no-audit --no-fund --silent)
    fi
    export CHROMIUM="$(command -v chromium)"
}
