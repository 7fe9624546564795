#!/usr/bin/env bash
# Installs and starts what the test suite needs from Debian: a PostgreSQL server reachable at
# 127.0.0.1:5432 with trust auth and a database `test`, and Prometheus (`prometheus` and
# `promtool`, package prometheus) for the alert-rule and scrape tests, Alertmanager (package
# prometheus-alertmanager) for the alert intake test (tests/test_alert_intake.py), and Chromium (package
# chromium, /usr/bin/chromium) for the browser tests of the gateway's Connect and gRPC-Web edge and
# of the web console (tests/console), with a CJK font (fonts-wqy-microhei) for its Chinese UI.
# Skips whatever is there.
set -euo pipefail

pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if [ ! -x /usr/bin/prometheus ] || ! command -v promtool >/dev/null 2>&1; then
  echo "installing Prometheus (Debian package prometheus)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Only the binaries are needed; the package's own service is not.
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

if [ ! -x /usr/bin/prometheus-alertmanager ]; then
  echo "installing Alertmanager (Debian package prometheus-alertmanager)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus-alertmanager >/dev/null
  # Only the binary is needed; the package's own service is not.
  $SUDO systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium (Debian package chromium)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# A CJK font, so the console's Chinese UI renders (and its screenshots show it) in headless Chromium.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  echo "installing a CJK font (Debian package fonts-wqy-microhei)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends fonts-wqy-microhei >/dev/null
fi

if ! pg_ready; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main
  # Trust local TCP connections: this server exists only for the test suite.
  if ! grep -q "careops-test" "$conf/pg_hba.conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # careops-test' "$conf/pg_hba.conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi

if ! psql -h 127.0.0.1 -U postgres -d test -c "select 1" >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1 || \
    $SUDO -u postgres psql -c "create database test" >/dev/null
fi
echo "postgresql ready at 127.0.0.1:5432/test"
