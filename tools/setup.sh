#!/usr/bin/env bash
# Installs what this project needs on Debian 12 (as root) and nothing that is already there.
# Idempotent: a second run only checks and returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(kamailio kamailio-python3-modules kamailio-postgres-modules kamailio-utils-modules
      kamailio-extra-modules rtpengine-daemon sip-tester postgresql python3-venv
      prometheus    # prometheus + promtool: monitoring/ checks and its end-to-end test
      espeak-ng     # media service: the built-in spoken prompts (GPL-3.0, output audio is ours)
      kamailio-presence-modules   # phones: BLF (presence, presence_dialoginfo, pua, pua_dialoginfo)
      baresip)      # a real SIP client from Debian in the end-to-end tests (phones, media)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The packages may ship services of their own; this project runs private instances.
  for svc in kamailio rtpengine-daemon postgresql prometheus; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# The virtual environment must come from /usr/bin/python3: app_python3 embeds that interpreter.
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with the pinned Python dependencies"
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
