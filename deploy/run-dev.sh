#!/bin/sh
# `make run`: the local marketplace simulators, the daemon, and the demo stock once it answers.
#
# Usage: deploy/run-dev.sh BIN CONFIG   (BIN: the venv's bin folder)
#
# The channels of the shipped config.toml take their credentials from the environment; for a
# local run these development values are used unless the variables are already set. The
# simulators accept exactly the values the adapters send. Production passes real credentials
# through the service's environment file (docs/operations.md) and never runs this script.
set -eu
BIN=$1
CONFIG=$2

: "${INVSYNC_WHOLESALE_SECRET:=dev-wholesale-secret}"; export INVSYNC_WHOLESALE_SECRET
: "${INVSYNC_WH_EAST_SECRET:=dev-wh-east-secret}"; export INVSYNC_WH_EAST_SECRET
: "${INVSYNC_SHOPIFY_TOKEN:=shpat_dev_token}"; export INVSYNC_SHOPIFY_TOKEN
: "${INVSYNC_SHOPIFY_SECRET:=dev-shopify-app-secret}"; export INVSYNC_SHOPIFY_SECRET
: "${INVSYNC_AMAZON_REFRESH_TOKEN:=Atzr|dev-refresh-token}"; export INVSYNC_AMAZON_REFRESH_TOKEN
: "${INVSYNC_AMAZON_CLIENT_ID:=amzn1.application-oa2-client.dev}"; export INVSYNC_AMAZON_CLIENT_ID
: "${INVSYNC_AMAZON_CLIENT_SECRET:=dev-amazon-client-secret}"; export INVSYNC_AMAZON_CLIENT_SECRET
: "${INVSYNC_AMAZON_RELAY_SECRET:=dev-amazon-relay-secret}"; export INVSYNC_AMAZON_RELAY_SECRET
: "${INVSYNC_EBAY_TOKEN:=v^1.1#dev-refresh-token}"; export INVSYNC_EBAY_TOKEN
: "${INVSYNC_EBAY_CLIENT_ID:=dev-ebay-app}"; export INVSYNC_EBAY_CLIENT_ID
: "${INVSYNC_EBAY_CLIENT_SECRET:=dev-ebay-cert}"; export INVSYNC_EBAY_CLIENT_SECRET
: "${INVSYNC_WALMART_CLIENT_ID:=dev-walmart-client}"; export INVSYNC_WALMART_CLIENT_ID
: "${INVSYNC_WALMART_CLIENT_SECRET:=dev-walmart-secret}"; export INVSYNC_WALMART_CLIENT_SECRET
: "${INVSYNC_WALMART_RELAY_SECRET:=dev-walmart-relay-secret}"; export INVSYNC_WALMART_RELAY_SECRET
: "${INVSYNC_TIKTOK_TOKEN:=ROW_dev-access-token}"; export INVSYNC_TIKTOK_TOKEN
: "${INVSYNC_TIKTOK_APP_SECRET:=dev-tiktok-app-secret}"; export INVSYNC_TIKTOK_APP_SECRET
: "${INVSYNC_TIKTOK_REFRESH_TOKEN:=ROW_dev-refresh-token}"; export INVSYNC_TIKTOK_REFRESH_TOKEN

# The simulated marketplaces list the demo's catalogue (they refuse SKUs a seller never listed).
DEMO="$(dirname "$0")/../docs/demo-stock.csv"
"$BIN/invsync" simulate -c "$CONFIG" --catalogue "$DEMO" &
SIM=$!
trap 'kill "$SIM" 2>/dev/null || true; wait "$SIM" 2>/dev/null || true' EXIT

# Demo stock, loaded through the daemon's API once it is ready (a re-run applies nothing twice;
# the CLI sends the API token the daemon generated in its data directory), then the live page's
# sign-in link again, so it is the last line on the screen.
(
  "$BIN/python" - "$CONFIG" <<'PY' && "$BIN/invsync" stock import "$DEMO" -c "$CONFIG" >&2 \
    && "$BIN/python" -c 'import sys
from invsync.daemon.config import load_config
from invsync.daemon.security import page_link
config = load_config(sys.argv[1])
print(f"\ninvsync: live page (this link signs the browser in): {page_link(config, config.server.port)}\n", file=sys.stderr)' "$CONFIG"
import sys, time, urllib.request
from invsync.daemon.config import load_config
server = load_config(sys.argv[1]).server
host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
for _ in range(600):
    try:
        with urllib.request.urlopen(f"http://{host}:{server.port}/readyz", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
) &

"$BIN/invsync" run -c "$CONFIG"
