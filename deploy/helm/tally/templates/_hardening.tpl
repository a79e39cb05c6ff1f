{{/*
Probes and the preStop drain of the Tally container. /healthz answers once the app has
started (store opened); /readyz waits on the store, up to tally.storeTimeoutMs.
*/}}
{{- define "tally.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.startupProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.startupProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.startupProbe.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
  timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
  failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
{{- if .Values.preStopSleepSeconds }}
lifecycle:
  # Keep serving while the endpoint removal reaches the load balancer and kube-proxy.
  preStop:
    exec:
      command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints with the pods' selector labels filled in where none is given.
*/}}
{{- define "tally.topologySpread" -}}
{{- if .Values.topologySpreadConstraints }}
{{- $selector := dict "matchLabels" (include "tally.selectorLabels" . | fromYaml) }}
topologySpreadConstraints:
{{- range .Values.topologySpreadConstraints }}
  - {{ toYaml (merge (deepCopy .) (dict "labelSelector" $selector)) | indent 4 | trim }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Combinations the schema cannot express; each refusal says what to change.
*/}}
{{- define "tally.checks" -}}
{{- $replicas := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- if and .Values.podDisruptionBudget.enabled (kindIs "float64" .Values.podDisruptionBudget.minAvailable) }}
{{- if ge (int .Values.podDisruptionBudget.minAvailable) $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below the replica count (%d), or no node can ever be drained: raise replicaCount/autoscaling.minReplicas or lower minAvailable" (int .Values.podDisruptionBudget.minAvailable) $replicas) }}
{{- end }}
{{- end }}
{{- if le (mul (int .Values.readinessProbe.timeoutSeconds) 1000) (int .Values.tally.storeTimeoutMs) }}
{{- fail (printf "readinessProbe.timeoutSeconds (%d s) must be longer than tally.storeTimeoutMs (%d ms): /readyz waits that long on a slow store" (int .Values.readinessProbe.timeoutSeconds) (int .Values.tally.storeTimeoutMs)) }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStopSleepSeconds (%d): the pod would be killed before it drains" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d): the API server refuses the HorizontalPodAutoscaler" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if .Values.externalSecrets.enabled }}
{{- if and .Values.storeCA.secretKey (not .Values.externalSecrets.storeCASecret) }}
{{- fail (printf "storeCA.secretKey (%s) needs externalSecrets.storeCASecret: the ExternalSecret writes that key only from it, and the pods would wait on a missing Secret key" .Values.storeCA.secretKey) }}
{{- end }}
{{- if and .Values.externalSecrets.storeCASecret (not .Values.storeCA.secretKey) }}
{{- fail (printf "externalSecrets.storeCASecret (%s) needs storeCA.secretKey (e.g. global-bundle.pem): without it the CA bundle is neither synced nor mounted where the store URL's tlsCAFile points" .Values.externalSecrets.storeCASecret) }}
{{- end }}
{{- end }}
{{- if not (include "tally.publicUrl" .) }}
{{- fail "tally.publicUrl is empty and there is no ingress host to derive it from: TALLY_PUBLIC_URL and TALLY_JWT_ISSUER would be empty; set tally.publicUrl or ingress.hosts" }}
{{- end }}
{{- if and .Values.monitoring.rules.enabled (not .Values.metrics.enabled) }}
{{- fail "monitoring.rules.enabled needs metrics.enabled: without a metrics port nothing is scraped, and TallyInstanceDown (P0) would fire at once and forever" }}
{{- end }}
{{- end }}

{{/*
"true" when the IPv4 CIDR given contains the instance metadata address 169.254.169.254
(an ipBlock's `except` must lie inside its `cidr`).
*/}}
{{- define "tally.coversMetadata" -}}
{{- if not (contains ":" .) }}
{{- $parts := splitList "/" . }}
{{- $o := splitList "." (first $parts) }}
{{- $ip := add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) }}
{{- $size := 1 }}
{{- range until (sub 32 (atoi (last $parts)) | int) }}{{ $size = mul $size 2 }}{{ end }}
{{- $base := mul (div $ip $size) $size }}
{{- $metadata := 2852039166 }}
{{- if and (ge $metadata $base) (lt $metadata (add $base $size)) }}true{{ end }}
{{- end }}
{{- end }}
