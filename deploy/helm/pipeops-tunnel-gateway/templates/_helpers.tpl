{{- define "gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gateway.labels" -}}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gateway.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The headless Service that gives each replica the name the others reach it at. */}}
{{- define "gateway.replicasService" -}}
{{- printf "%s-replicas" (include "gateway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gateway.fleet" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "gateway.validate" -}}
{{- $_ := required "tls.existingSecret is required: a kubernetes.io/tls Secret with the gateway's certificate" .Values.tls.existingSecret -}}
{{- $_ := required "tokens.existingSecret is required: a Secret with the tokens file" .Values.tokens.existingSecret -}}
{{- if and (gt (int .Values.replicas) 1) (not (include "gateway.fleet" .)) -}}
{{- fail "replicas > 1 needs redis.url or redis.existingSecret: the replicas share their registry in Redis" -}}
{{- end -}}
{{- if and (include "gateway.fleet" .) (not .Values.replicaSecret.existingSecret) -}}
{{- fail "redis needs replicaSecret.existingSecret: the secret the replicas authenticate each other with" -}}
{{- end -}}
{{- end -}}
