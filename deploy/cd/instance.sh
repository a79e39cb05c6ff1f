#!/usr/bin/env bash
# One instance's release, as .github/workflows/cd.yml runs it (and an operator can, with
# the same AWS role and kubeconfig). INSTANCE is a tenant slug or "pooled".
#
#   deploy/cd/instance.sh terraform  INSTANCE            plan + apply that instance only
#   deploy/cd/instance.sh secrets    INSTANCE [rotate]   database user, signing keys, smoke client
#   deploy/cd/instance.sh release    INSTANCE DIGEST     helm upgrade --install --atomic --wait
#   deploy/cd/instance.sh smoke      INSTANCE            tally smoke; a failure rolls the release back
#
# Needs: aws, jq, helm, terraform, and `tally` (installed from requirements.lock).
# Secrets are passed through files and the environment, never on a command line.
# TALLY_TF_OUTPUTS: the `terraform output -json` file of terraform/live, written by the
# terraform step and read by the others; default $RUNNER_TEMP/outputs.json (outside
# Actions, $TMPDIR or /tmp).
set -euo pipefail
cd "$(dirname "$0")/../.."

step="${1:?step}"
instance="${2:?instance: a tenant slug or pooled}"
live=terraform/live
outputs="${TALLY_TF_OUTPUTS:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/outputs.json}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ ! "$instance" =~ ^[a-z][a-z0-9-]{0,30}[a-z0-9]$ ]]; then
  echo "not an instance name: $instance" >&2
  exit 2
fi

platform() { jq -r --arg k "$1" '.platform.value[$k] // empty' "$outputs"; }
if [ "$instance" = pooled ]; then
  namespace=tally
  # Rendered from the outputs at release time (see the release step), as
  # `tally provision --pooled` renders them: role, secrets, hosts, public URL.
  values="$work/deploy/pooled/values.yaml"
  target=module.platform
  info() { jq -r --arg k "$1" '.platform.value.pooled[$k] // empty' "$outputs"; }
  migrate_flags=(--pooled)
else
  namespace="tally-$instance"
  values="deploy/tenants/$instance/values.yaml"
  target="module.tenant[\"$instance\"]"
  info() { jq -r --arg s "$instance" --arg k "$1" '.tenants.value[$s][$k] // empty' "$outputs"; }
  migrate_flags=(--tenant "$instance")
fi

secret_value() {  # name -> value, or empty when the secret has no value yet
  aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text 2>/dev/null || true
}

# The store URL options name tlsCAFile by its path in the pod (the chart mounts the
# platform's CA bundle there); here the bundle is fetched into $work and the admin URL
# names that copy instead. Called before admin_store_url, outside a $(...), so an
# empty bundle stops the script.
fetch_store_ca() {
  local name
  name="$(platform store_ca_secret_name)"
  [ -n "$name" ] || return 0
  secret_value "$name" >"$work/store-ca.pem"
  if [ ! -s "$work/store-ca.pem" ]; then
    echo "the store CA bundle secret $name has no value (terraform store_ca_bundle fills it)" >&2
    exit 1
  fi
}

admin_store_url() {  # the store's admin URL, for tally migrate --tenant/--pooled only
  local admin options
  admin="$(secret_value "$(platform store_admin_secret_arn)")"
  if jq -e .username >/dev/null 2>&1 <<<"$admin"; then  # DocumentDB's managed secret
    options="$(platform store_url_options)"
    if [ -s "$work/store-ca.pem" ]; then
      options="$(jq -rn --arg o "$options" --arg f "$work/store-ca.pem" \
        '$o | sub("tlsCAFile=[^&]*"; "tlsCAFile=\($f|@uri)")')"
    fi
    printf '%s://%s:%s@%s/?authSource=admin&%s' "$(platform store_scheme)" \
      "$(jq -rn --arg v "$(jq -r .username <<<"$admin")" '$v|@uri')" \
      "$(jq -rn --arg v "$(jq -r .password <<<"$admin")" '$v|@uri')" \
      "$(platform store_host)" "$options"
  else
    printf '%s' "$admin"  # an external store's secret is the URI itself
  fi
}

case "$step" in
terraform)
  terraform -chdir="$live" plan -input=false -lock-timeout=5m -target="$target" -out="$work/plan"
  terraform -chdir="$live" apply -input=false -lock-timeout=5m "$work/plan"
  terraform -chdir="$live" output -json >"$outputs"
  ;;

secrets)
  rotate="${3:-false}"
  fetch_store_ca
  store_secret="$(info store_secret_name)"
  database="$(info database)"
  user="$(info store_username)"
  if [ -z "$(secret_value "$store_secret")" ] || [ "$rotate" = true ]; then
    # A new password: the user is created (or updated, roles reset to readWrite on its
    # database alone) before the secret names it, so the pods never see a wrong one.
    umask 077
    python3 -c 'import secrets; print(secrets.token_urlsafe(30))' >"$work/password"
    TALLY_STORE_URL="$(admin_store_url)" TALLY_MONGO_DATABASE="$database" \
      tally migrate "${migrate_flags[@]}" --password-file "$work/password"
    jq -n --rawfile pw "$work/password" --arg user "$user" \
      --arg scheme "$(platform store_scheme)" --arg host "$(platform store_host)" \
      --arg options "$(platform store_url_options)" \
      '($pw|rtrimstr("\n")) as $p | {username: $user, password: $p,
        "store-url": "\($scheme)://\($user|@uri):\($p|@uri)@\($host)/?authSource=admin&\($options)"}' \
      >"$work/store.json"
    aws secretsmanager put-secret-value --secret-id "$store_secret" \
      --secret-string "file://$work/store.json" >/dev/null
    if [ "$rotate" = true ] && kubectl -n "$namespace" get externalsecret tally >/dev/null 2>&1; then
      kubectl -n "$namespace" annotate externalsecret tally force-sync="$(date +%s)" --overwrite
      echo "ROLLOUT_RESTART=true" >>"${GITHUB_ENV:-/dev/null}"
    fi
  fi
  keys_secret="$(info signing_keys_secret_name)"
  if [ -z "$(secret_value "$keys_secret")" ]; then
    TALLY_KEYS_DIR="$work/keys" tally keys generate >/dev/null
    python3 - "$work/keys" >"$work/keys.json" <<'PY'
import json, pathlib, sys
print(json.dumps({p.name: p.read_text() for p in sorted(pathlib.Path(sys.argv[1]).iterdir())}))
PY
    aws secretsmanager put-secret-value --secret-id "$keys_secret" \
      --secret-string "file://$work/keys.json" >/dev/null
  fi
  smoke_secret="tally/$instance/smoke-client"
  if [ -z "$(secret_value "$smoke_secret")" ]; then
    # The smoke client: the tenant's own (in its instance's database), or on the pooled
    # instance a tenant of its own, so the canary's numbers touch no client's data.
    if [ "$instance" = pooled ]; then
      TALLY_STORE_URL="$(admin_store_url)" TALLY_MONGO_DATABASE="$database" \
        tally tenants create platform-smoke --name "Platform smoke test" --json >"$work/smoke.json"
    else
      TALLY_STORE_URL="$(admin_store_url)" TALLY_MONGO_DATABASE="$database" \
        tally clients create --tenant "$instance" --name smoke \
        --scope "sequences:read sequences:next sequences:write" --json >"$work/smoke.json"
    fi
    aws secretsmanager create-secret --name "$smoke_secret" \
      --secret-string "file://$work/smoke.json" >/dev/null
  fi
  ;;

release)
  digest="${3:?digest}"
  if [ "$instance" = pooled ]; then
    tally provision --pooled --terraform-outputs "$outputs" --out "$work" --json >/dev/null
  fi
  helm upgrade --install tally deploy/helm/tally --namespace "$namespace" --create-namespace \
    -f "$values" --set-string "image.repository=$(platform ecr_repository_url)" \
    --set-string "image.digest=$digest" --atomic --wait --timeout 10m
  if [ "${ROLLOUT_RESTART:-false}" = true ]; then
    kubectl -n "$namespace" rollout restart deployment/tally
    kubectl -n "$namespace" rollout status deployment/tally --timeout 10m
  fi
  ;;

smoke)
  url="$(info public_url)"  # the host the release's Ingress serves
  if [ -z "$url" ]; then
    echo "no public_url for $instance in $outputs: run the terraform step first" >&2
    exit 1
  fi
  creds="$(secret_value "tally/$instance/smoke-client")"
  if ! TALLY_SMOKE_CLIENT_SECRET="$(jq -r .client_secret <<<"$creds")" \
    tally smoke --url "$url" --client-id "$(jq -r .client_id <<<"$creds")"; then
    echo "smoke failed on $instance: rolling the release back" >&2
    helm rollback tally --namespace "$namespace" --wait --timeout 10m
    exit 1
  fi
  ;;

*)
  echo "unknown step: $step" >&2
  exit 2
  ;;
esac
