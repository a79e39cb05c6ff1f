{{/*
Expand the name of the chart.
*/}}
{{- define "tally.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "tally.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "tally.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "tally.labels" -}}
helm.sh/chart: {{ include "tally.chart" . }}
{{ include "tally.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.tally.tenant }}
tally.io/tenant: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Selector labels (never the chart version: selectors are immutable)
*/}}
{{- define "tally.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tally.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "tally.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tally.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image, by digest when one is given
*/}}
{{- define "tally.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Public base URL: explicit, or https://<first ingress host>
*/}}
{{- define "tally.publicUrl" -}}
{{- if .Values.tally.publicUrl }}
{{- .Values.tally.publicUrl | trimSuffix "/" }}
{{- else if .Values.ingress.hosts }}
{{- printf "https://%s" (first .Values.ingress.hosts) }}
{{- end }}
{{- end }}

{{/*
Name of the TLS secret of the ingress
*/}}
{{- define "tally.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "tally.fullname" .)) .Values.ingress.tls.secretName }}
{{- end }}

{{/*
TALLY_STORE_URL from the instance Secret (Deployment and migrate Job alike)
*/}}
{{- define "tally.storeEnv" -}}
- name: TALLY_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecret | quote }}
      key: {{ .Values.existingSecretKeys.storeUrl | quote }}
{{- end }}

{{/*
The store's CA bundle (the store URL's tlsCAFile points into it): a ConfigMap, or a
key of existingSecret (where the ExternalSecret syncs it)
*/}}
{{- define "tally.storeCAMount" -}}
{{- if or .Values.storeCA.existingConfigMap .Values.storeCA.secretKey }}
- name: store-ca
  mountPath: {{ .Values.storeCA.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "tally.storeCAVolume" -}}
{{- if .Values.storeCA.secretKey }}
- name: store-ca
  secret:
    secretName: {{ .Values.existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.storeCA.secretKey | quote }}
        path: {{ .Values.storeCA.secretKey | quote }}
{{- else if .Values.storeCA.existingConfigMap }}
- name: store-ca
  configMap:
    name: {{ .Values.storeCA.existingConfigMap }}
{{- end }}
{{- end }}

{{/*
Hook annotations of what the migrate Job needs before the release's own objects exist
(service account, secret store, external secrets); $weight orders them
*/}}
{{- define "tally.preInstallHook" -}}
{{- if .root.Values.migrations.enabled }}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}
{{- end }}
