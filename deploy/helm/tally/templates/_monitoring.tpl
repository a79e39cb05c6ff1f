{{/*
The `job` label of this release's series, and the PromQL matchers that select them.
*/}}
{{- define "tally.monitoring.job" -}}
{{- default (include "tally.fullname" .) .Values.monitoring.job }}
{{- end }}

{{- define "tally.monitoring.selector" -}}
job="{{ include "tally.monitoring.job" . }}", namespace="{{ .Release.Namespace }}"
{{- end }}

{{/*
The job name of the blackbox Probe's series.
*/}}
{{- define "tally.monitoring.probeJob" -}}
{{- printf "%s-probe" (include "tally.fullname" .) }}
{{- end }}
