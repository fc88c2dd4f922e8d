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
  # patch: the operator's finalizer (artifacts.deleteOnDelete), and a MeetingBotSchedule's
  # bots (cancel, joinAt). create: a schedule's bots, in the schedule's own namespace.
  verbs: ["list", "watch", "delete", "patch", "create"]
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingbots/status", "meetingbotschedules/status", "meetingstreams/status", "zoomaccounts/status", "zoomusergrants/status"]
  verbs: ["patch"]
- apiGroups: ["meetingbot.dev"]
  # A bot's children, a grant's Secret and a schedule's bots set blockOwnerDeletion.
  resources: ["meetingbots/finalizers", "meetingbotschedules/finalizers", "zoomusergrants/finalizers"]
  verbs: ["update"]
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingbotschedules"]
  verbs: ["list", "watch"]
- apiGroups: ["meetingbot.dev"]
  resources: ["zoomaccounts", "zoomusergrants"]
  verbs: ["list", "watch"]
- apiGroups: ["meetingbot.dev"]
  resources: ["meetingstreams"]
  # delete: only a finished MeetingStream's ttlSecondsAfterFinished.
  verbs: ["list", "watch", "delete"]
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
# A ZoomAccount's profile picture from a ConfigMap (used only with the opt-in label).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end -}}

{{/* The sandbox's in-cluster URL (the Zoom simulator's Service). */}}
{{- define "mbo.sandboxUrl" -}}
{{- printf "http://%s-zoomsim.%s.svc" (include "mbo.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* Base URLs ZoomAccounts may use: the configured ones, and the sandbox's when it runs. */}}
{{- define "mbo.allowedEndpoints" -}}
{{- $endpoints := .Values.operator.allowedEndpoints -}}
{{- if .Values.sandbox.enabled -}}
{{- $endpoints = append $endpoints (include "mbo.sandboxUrl" .) -}}
{{- end -}}
{{- join "," $endpoints -}}
{{- end -}}

{{/* Zoom's RTMS signaling servers MeetingStreams may be sent to: the configured ones, and the
     sandbox's (ws://, in-cluster) when it runs. */}}
{{- define "mbo.rtmsServers" -}}
{{- $servers := .Values.operator.rtmsServers -}}
{{- if .Values.sandbox.enabled -}}
{{- $servers = append $servers (replace "http://" "ws://" (include "mbo.sandboxUrl" .)) -}}
{{- end -}}
{{- join "," $servers -}}
{{- end -}}

{{/* The SDK script bots load: bot.sdkUrl, else the sandbox's fake SDK when it runs. */}}
{{- define "mbo.botSdkUrl" -}}
{{- if .Values.bot.sdkUrl -}}
{{- .Values.bot.sdkUrl -}}
{{- else if .Values.sandbox.enabled -}}
{{- printf "%s/sim/sdk/zoom-meeting-embedded.js" (include "mbo.sandboxUrl" .) -}}
{{- end -}}
{{- end -}}

{{/* The sandbox's own labels: never the operator's selector (its Deployment, Service and
     NetworkPolicy must not select the simulator). */}}
{{- define "mbo.sandboxSelectorLabels" -}}
app.kubernetes.io/name: {{ include "mbo.name" . }}-zoomsim
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mbo.sandboxLabels" -}}
{{ include "mbo.sandboxSelectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meetingbot-operator
app.kubernetes.io/component: zoom-sandbox
{{- end -}}

{{- define "mbo.streamWorkerName" -}}
{{- printf "%s-stream-worker" (include "mbo.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mbo.streamWorkerSelectorLabels" -}}
app.kubernetes.io/name: meetingbot-stream-worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}


{{/* The bot image: the user's own build. Zoom's Meeting SDK licence forbids redistributing the
     SDK, so no public bot image exists to default to. */}}
{{- define "mbo.botImage" -}}
{{- required "bot.image is required: build the bot image (make image, or bot-image/Dockerfile) and push it to your registry; Zoom's Meeting SDK licence forbids a public one (docs/install.md#the-bot-image)" .Values.bot.image -}}
{{- end -}}
