{{/* The release's full name, at most 63 characters. */}}
{{- define "agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agent.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agent.labels" -}}
{{ include "agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "agent.tokenSecret" -}}
{{- default (include "agent.fullname" .) .Values.token.existingSecret -}}
{{- end -}}

{{- define "agent.caConfigMap" -}}
{{- if .Values.gateway.caConfigMap.name -}}
{{- .Values.gateway.caConfigMap.name -}}
{{- else if .Values.gateway.caBundle -}}
{{- printf "%s-ca" (include "agent.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Checks that fail the install with a message naming the value. */}}
{{- define "agent.validate" -}}
{{- $_ := required "gateway.url is required: the gateway URL the agent dials (https://…)" .Values.gateway.url -}}
{{- $_ := required "cluster.name is required: this cluster's name at the gateway" .Values.cluster.name -}}
{{- if and (not .Values.token.value) (not .Values.token.existingSecret) -}}
{{- fail "a token is required: set token.existingSecret (a Secret with the agent token) or token.value" -}}
{{- end -}}
{{- if not (has .Values.accessAs (list "agent" "runner")) -}}
{{- fail (printf "accessAs must be agent or runner, not %q" .Values.accessAs) -}}
{{- end -}}
{{- if not (has .Values.rbac.preset (list "full" "read-only" "namespaced")) -}}
{{- fail (printf "rbac.preset must be full, read-only or namespaced, not %q" .Values.rbac.preset) -}}
{{- end -}}
{{- if and .Values.rbac.create (eq .Values.rbac.preset "namespaced") (empty .Values.rbac.namespaces) -}}
{{- fail "rbac.preset namespaced needs rbac.namespaces" -}}
{{- end -}}
{{- if and (eq .Values.accessAs "runner") .Values.rbac.create (empty .Values.rbac.impersonate.runners) -}}
{{- fail "accessAs runner needs rbac.impersonate.runners: the runner ids the agent may impersonate" -}}
{{- end -}}
{{- end -}}
