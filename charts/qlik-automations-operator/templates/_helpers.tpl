{{/* The chart name, or nameOverride. */}}
{{- define "qao.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else <release>-<chart> (just <release> when
it already contains the chart name). Cluster-scoped names (ClusterRole, ClusterRoleBinding)
use it too, so two releases never collide.
*/}}
{{- define "qao.fullname" -}}
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

{{/* chart-version, as the helm.sh/chart label wants it. */}}
{{- define "qao.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "qao.labels" -}}
helm.sh/chart: {{ include "qao.chart" . }}
{{ include "qao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's Pods. */}}
{{- define "qao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "qao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qao.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or more than one replica. */}}
{{- define "qao.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* Namespace of the leader-election Lease. */}}
{{- define "qao.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "qao.leaseName" -}}
{{- default (include "qao.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "qao.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The default connection's namespace and name, as a list; empty when none is set. */}}
{{- define "qao.defaultConnection" -}}
{{- with .Values.defaultConnection }}
{{- $parts := splitList "/" . }}
{{- if or (ne (len $parts) 2) (not (index $parts 0)) (not (index $parts 1)) }}
{{- fail (printf "defaultConnection must be namespace/name, got %q" .) }}
{{- end }}
{{- toJson $parts }}
{{- end }}
{{- end }}

{{/*
Everything the operator does with the Kubernetes API, read from src/controller/ and proven by
tests/chart_e2e.rs (the audit log of a real run shows every one of these used, and nothing else):
- both custom resources: list and watch (the controllers' watches); QlikAutomation: patch (the
  finalizer and the automation-id / create-intent annotations);
- their status subresources: patch (server-side apply of .status);
- Secrets: get (the connection), list and watch (a changed Secret reconciles its users);
- ConfigMaps: get (spec.workspaceFrom), list and watch (a changed workspace is applied);
- events.k8s.io Events: create, and patch when the same Event repeats (kube-runtime's Recorder).
The same rules go into the ClusterRole (all namespaces) or into a Role per watched namespace.
*/}}
{{- define "qao.rules" -}}
- apiGroups: ["automations.qlik.dev"]
  resources: ["qlikautomations"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["automations.qlik.dev"]
  resources: ["qlikautomationsettings"]
  verbs: ["list", "watch"]
- apiGroups: ["automations.qlik.dev"]
  resources: ["qlikautomations/status", "qlikautomationsettings/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
