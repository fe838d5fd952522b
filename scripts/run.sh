#!/bin/sh
# Serve the product on daphne (`manage.py runserver`) with the simulator beside it.
set -eu
URL="http://$HOST:$PORT/"
banner() {
  echo
  echo "  Mission Control: $URL"
  echo "  Log in as 'operator' with password 'mission-control'."
  echo "  Admin: ${URL}admin/ as 'admin' with password 'mission-control'."
  echo
}
banner
SIM_PID=""
if $BIN/python manage.py help simulate_rover >/dev/null 2>&1; then
  # SIMULATOR_SCENARIO=fades (or faults, eventful) adds simulated trouble; healthy by default.
  $BIN/python manage.py simulate_rover --url "http://$HOST:$PORT" --wait \
    --scenario "${SIMULATOR_SCENARIO:-healthy}" &
  SIM_PID=$!
fi
# The start-up lines scroll the banner away: print it again once the server answers.
(
  until $BIN/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "accounts/login/", timeout=1)' "$URL" 2>/dev/null; do
    sleep 0.5
  done
  banner
) &
BANNER_PID=$!
trap 'kill $BANNER_PID 2>/dev/null; [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; exit 0' INT TERM EXIT
$BIN/python manage.py runserver "$HOST:$PORT"
