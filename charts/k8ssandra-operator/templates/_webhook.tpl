{{/* The admission webhook's Service name. */}}
{{- define "k8ssandra-operator.webhookService" -}}
{{- printf "%s-webhook" (include "k8ssandra-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret of a generated webhook certificate. */}}
{{- define "k8ssandra-operator.webhookCertSecret" -}}
{{- printf "%s-webhook-cert" (include "k8ssandra-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Checks the webhook values; fails the render with the rule broken. */}}
{{- define "k8ssandra-operator.webhookChecks" -}}
{{- $w := .Values.admissionWebhook }}
{{- if not (has $w.failurePolicy (list "Fail" "Ignore")) }}
{{- fail (printf "admissionWebhook.failurePolicy must be Fail or Ignore, got %v" $w.failurePolicy) }}
{{- end }}
{{- if or (lt (int $w.timeoutSeconds) 1) (gt (int $w.timeoutSeconds) 30) }}
{{- fail (printf "admissionWebhook.timeoutSeconds must be between 1 and 30, got %v" $w.timeoutSeconds) }}
{{- end }}
{{- if or (lt (int $w.deadlineMs) 1) (ge (int $w.deadlineMs) (mul (int $w.timeoutSeconds) 1000)) }}
{{- fail (printf "admissionWebhook.deadlineMs must be positive and below admissionWebhook.timeoutSeconds (%v s), got %v" $w.timeoutSeconds $w.deadlineMs) }}
{{- end }}
{{- if not (has $w.certificate.source (list "generated" "secret")) }}
{{- fail (printf "admissionWebhook.certificate.source must be generated or secret, got %v" $w.certificate.source) }}
{{- end }}
{{- if and (eq $w.certificate.source "secret") (not $w.certificate.secretName) }}
{{- fail "admissionWebhook.certificate.secretName is required with certificate.source secret" }}
{{- end }}
{{- if and $w.url (not (hasPrefix "https://" $w.url)) }}
{{- fail (printf "admissionWebhook.url must start with https://, got %v" $w.url) }}
{{- end }}
{{- end }}

{{/* Hosts of a generated certificate: the Service's names, the URL's host, extraHosts. */}}
{{- define "k8ssandra-operator.webhookHosts" -}}
{{- $svc := include "k8ssandra-operator.webhookService" . }}
{{- $hosts := list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- with .Values.admissionWebhook.url }}
{{- $host := (urlParse .).host }}
{{- $hosts = append $hosts (regexReplaceAll ":[0-9]+$" $host "" | trimPrefix "[" | trimSuffix "]") }}
{{- end }}
{{- range .Values.admissionWebhook.certificate.extraHosts }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{/* The operator's webhook flags. */}}
{{- define "k8ssandra-operator.webhookArgs" -}}
{{- if .Values.admissionWebhook.enabled }}
{{- include "k8ssandra-operator.webhookChecks" . }}
- --webhook-addr=0.0.0.0:{{ .Values.admissionWebhook.port }}
- --webhook-failure-policy={{ .Values.admissionWebhook.failurePolicy }}
- --webhook-deadline-ms={{ .Values.admissionWebhook.deadlineMs }}
{{- if eq .Values.admissionWebhook.certificate.source "secret" }}
- --webhook-cert-dir=/etc/k8ssandra/webhook
{{- else }}
- --webhook-cert-secret={{ include "k8ssandra-operator.webhookCertSecret" . }}
- --webhook-cert-namespace={{ .Release.Namespace }}
- --webhook-cert-host={{ include "k8ssandra-operator.webhookHosts" . }}
- --webhook-configuration={{ include "k8ssandra-operator.fullname" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The webhook's container port. */}}
{{- define "k8ssandra-operator.webhookPort" -}}
{{- if .Values.admissionWebhook.enabled }}
- name: webhook
  containerPort: {{ .Values.admissionWebhook.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{/* The user's certificate Secret, mounted. */}}
{{- define "k8ssandra-operator.webhookVolumeMount" -}}
{{- if and .Values.admissionWebhook.enabled (eq .Values.admissionWebhook.certificate.source "secret") }}
- name: webhook-cert
  mountPath: /etc/k8ssandra/webhook
  readOnly: true
{{- end }}
{{- end }}

{{- define "k8ssandra-operator.webhookVolume" -}}
{{- if and .Values.admissionWebhook.enabled (eq .Values.admissionWebhook.certificate.source "secret") }}
- name: webhook-cert
  secret:
    secretName: {{ .Values.admissionWebhook.certificate.secretName }}
{{- end }}
{{- end }}
