{{- define "k8ssandra-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k8ssandra-operator.fullname" -}}
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

{{- define "k8ssandra-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8ssandra-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "k8ssandra-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "k8ssandra-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "k8ssandra-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "k8ssandra-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace watched in namespace-scoped mode. */}}
{{- define "k8ssandra-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace }}
{{- end }}

{{- define "k8ssandra-operator.hasCustomPolicies" -}}
{{- if or .Values.customPolicies.configMap .Values.customPolicies.volume }}true{{ end }}
{{- end }}

{{/*
Rules of the operator's own work, the same in both modes. Each verb is one the host uses:
parents are watched, patched (finalizers by server-side apply) and get status patches;
owned children are server-side applied (create/patch), pruned (delete) and watched by
label; Pods and PVCs are read and deleted only; Secrets are read by name, listed by label,
generated (create) and replicated (patch).
*/}}
{{- define "k8ssandra-operator.rules" -}}
- apiGroups:
    - cassandra.datastax.com
    - k8ssandra.io
    - config.k8ssandra.io
    - control.k8ssandra.io
    - medusa.k8ssandra.io
    - reaper.k8ssandra.io
    - replication.k8ssandra.io
    - stargate.k8ssandra.io
  resources:
    - cassandradatacenters
    - k8ssandraclusters
    - clientconfigs
    - cassandratasks
    - k8ssandratasks
    - scheduledtasks
    - medusabackupjobs
    - medusabackups
    - medusabackupschedules
    - medusaconfigurations
    - medusarestorejobs
    - medusatasks
    - reapers
    - repairschedules
    - repairruns
    - replicatedsecrets
    - stargates
  verbs: [get, list, watch, patch]
# Custom resources that a built-in policy owns (K8ssandraCluster → CassandraDatacenter,
# ReplicatedSecret, Stargate, Reaper; K8ssandraTask → CassandraTask): created by
# server-side apply and pruned. Finished tasks are also deleted when their TTL ends.
- apiGroups:
    - cassandra.datastax.com
    - replication.k8ssandra.io
    - stargate.k8ssandra.io
    - reaper.k8ssandra.io
    - control.k8ssandra.io
  resources:
    - cassandradatacenters
    - replicatedsecrets
    - stargates
    - reapers
    - cassandratasks
    - k8ssandratasks
  verbs: [create, delete]
# Runs of backup schedules: created on schedule, deleted past the history limits.
- apiGroups: [medusa.k8ssandra.io]
  resources: [medusabackupjobs, medusatasks]
  verbs: [create, delete]
# Each datacenter's Medusa purge schedule: made by the K8ssandraCluster policy, pruned with
# spec.medusa or purgeBackups: false.
- apiGroups: [medusa.k8ssandra.io]
  resources: [medusabackupschedules]
  verbs: [create, delete]
# MedusaBackups record backups in the storage: created by a backup job or a sync task, and
# deleted only by a sync task when the storage no longer holds the backup (never pruned).
- apiGroups: [medusa.k8ssandra.io]
  resources: [medusabackups]
  verbs: [create, delete]
- apiGroups:
    - cassandra.datastax.com
    - k8ssandra.io
    - config.k8ssandra.io
    - control.k8ssandra.io
    - medusa.k8ssandra.io
    - reaper.k8ssandra.io
    - replication.k8ssandra.io
    - stargate.k8ssandra.io
  resources:
    - cassandradatacenters/status
    - k8ssandraclusters/status
    - clientconfigs/status
    - cassandratasks/status
    - k8ssandratasks/status
    - scheduledtasks/status
    - medusabackupjobs/status
    - medusabackups/status
    - medusabackupschedules/status
    - medusaconfigurations/status
    - medusarestorejobs/status
    - medusatasks/status
    - reapers/status
    - repairschedules/status
    - repairruns/status
    - replicatedsecrets/status
    - stargates/status
  verbs: [patch]
# ownerReferences with a controller pointing at a parent need update on its finalizers.
- apiGroups:
    - cassandra.datastax.com
    - k8ssandra.io
    - control.k8ssandra.io
    - medusa.k8ssandra.io
    - reaper.k8ssandra.io
    - replication.k8ssandra.io
    - stargate.k8ssandra.io
  resources:
    - cassandradatacenters/finalizers
    - k8ssandraclusters/finalizers
    - cassandratasks/finalizers
    - k8ssandratasks/finalizers
    - scheduledtasks/finalizers
    - medusabackupjobs/finalizers
    - medusabackupschedules/finalizers
    - medusarestorejobs/finalizers
    - medusatasks/finalizers
    - reapers/finalizers
    - repairschedules/finalizers
    - replicatedsecrets/finalizers
    - stargates/finalizers
  verbs: [update]
- apiGroups: [apps]
  # deployments: Stargate runs one per rack, Reaper one (a StatefulSet with local storage).
  resources: [statefulsets, deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  # patch: the seed label on Cassandra pods (cass-operator labels running nodes as seeds).
  # get: Medusa, Reaper and CQL operations read their target pod by name (its address,
  # its containers' ports); nothing more than list already grants.
  verbs: [get, list, watch, delete, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  # patch: volume expansion writes the larger size into existing claims.
  verbs: [list, watch, patch, delete]
{{- if .Values.global.clusterScoped }}
# Whether a StorageClass allows volume expansion. Cluster-scoped, so only with the
# ClusterRole; a namespace-scoped operator does not read them and leaves that check to
# the API server's resize admission.
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [list, watch]
# Whether the Prometheus Operator's ServiceMonitor kind is served (its APIService, which
# the API server registers for every CRD group). A namespace-scoped operator cannot read
# them; it applies the ServiceMonitor when telemetry asks for one.
- apiGroups: [apiregistration.k8s.io]
  resources: [apiservices]
  verbs: [list, watch]
{{- end }}
# Telemetry: the datacenter policy owns a ServiceMonitor per datacenter.
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
{{- if .Values.controlPlane }}
  # The K8ssandraCluster policy reads its Secrets through a label-selected watch; the
  # ReplicatedSecret controller deletes the copies it made when their target goes.
  verbs: [get, list, watch, create, patch, delete]
{{- else }}
  # watch: the built-in policies are all loaded in data-plane mode too, and the
  # K8ssandraCluster policy's label-selected Secret watch starts with them (proven by
  # chart_e2e's RBAC run); no delete, since no ReplicatedSecret copies are made here.
  verbs: [get, list, watch, create, patch]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}
