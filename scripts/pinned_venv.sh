# Sourced by scripts/test.sh and scripts/terraform_check.sh.
# pinned_venv DIR REQUIREMENTS...: a venv at DIR holding exactly the pinned requirements; reinstalls only when the
# requirement files change (their hash is stamped in DIR).
pinned_venv() {
  local venv=$1
  shift
  local stamp="$venv/.requirements.sha256" want args=()
  want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    for file in "$@"; do args+=(-r "$file"); done
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
    echo "$want" >"$stamp"
  fi
}
