{{- define "mbo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mbo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mbo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meetingbot-operator
{{- end -}}

{{- define "mbo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mbo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mbo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mbo.reportKeySecret" -}}
{{- default (printf "%s-report-key" (include "mbo.fullname" .)) .Values.operator.reportKey.existingSecret -}}
{{- end -}}

{{/* The rules the operator needs in the namespaces it watches: exactly the calls in
     operator/meetingbot_operator/kube.py and kopf's watches (a test checks each is used). */}}
{{- define "mbo.namespacedRules" -}}
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingbots"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingbots/status", "zoomaccounts/status"]
  verbs: ["patch"]
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingbots/finalizers"]
  verbs: ["update"]
- apiGroups: ["meetingbot.dev"]
  resources: ["zoomaccounts"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Secrets: read the ones a ZoomAccount or MeetingBot names (used only with the opt-in label),
# watched so a changed or deleted credential is noticed at once; the join Secrets are created,
# replaced per attempt and deleted when the bot finishes.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
