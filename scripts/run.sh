#!/bin/sh
# Serve the product on daphne (`manage.py runserver`) with the simulator beside it.
set -eu
URL="http://$HOST:$PORT/"
echo
echo "  Mission Control: $URL"
echo "  Log in as 'operator' with password 'mission-control'."
echo "  Admin: ${URL}admin/"
echo
SIM_PID=""
if $BIN/python manage.py help simulate_rover >/dev/null 2>&1; then
  $BIN/python manage.py simulate_rover --url "http://$HOST:$PORT" --wait &
  SIM_PID=$!
fi
trap '[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; exit 0' INT TERM EXIT
$BIN/python manage.py runserver "$HOST:$PORT"
