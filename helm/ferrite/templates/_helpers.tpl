{{/*
Names, labels and the pieces every ferrite workload shares.

Each tier (catalog, router, ingester, querier, compactor) is named `<fullname>-<tier>`: its
workload, Service, ServiceAccount and PodDisruptionBudget (the compactor has none) all carry
that name, and its pods the labels of `ferrite.selectorLabels` with
`app.kubernetes.io/component: <tier>`.
*/}}

{{- define "ferrite.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-ferrite`, or the release name alone when it already contains the chart's name.
Kept short enough for `-ingester` plus a StatefulSet ordinal and the pod hash to fit. */}}
{{- define "ferrite.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A tier's object name. Call with (dict "root" $ "tier" "router"). */}}
{{- define "ferrite.tierName" -}}
{{- printf "%s-%s" (include "ferrite.fullname" .root) .tier }}
{{- end }}

{{- define "ferrite.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (dict "root" $ "tier" "router"); tier may be "". */}}
{{- define "ferrite.labels" -}}
helm.sh/chart: {{ include "ferrite.chart" .root }}
{{ include "ferrite.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ferrite
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What a tier's Service, PDB and spread constraints select its pods by. */}}
{{- define "ferrite.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrite.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .tier }}
app.kubernetes.io/component: {{ .tier }}
{{- end }}
{{- end }}

{{- define "ferrite.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* http or https, for peer URLs and probes. */}}
{{- define "ferrite.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* The catalog service's URL, as the other tiers reach it. */}}
{{- define "ferrite.catalogUrl" -}}
{{- printf "%s://%s:%d" (include "ferrite.scheme" .) (include "ferrite.tierName" (dict "root" . "tier" "catalog")) (int .Values.port) }}
{{- end }}

{{/* Kubernetes discovery of a tier's ready pods: `k8s+http(s)://<service>:<port>`. The
process watches the EndpointSlices of that Service in its own namespace. Call with
(dict "root" $ "tier" "ingester"). */}}
{{- define "ferrite.peers" -}}
{{- printf "k8s+%s://%s:%d" (include "ferrite.scheme" .root) (include "ferrite.tierName" .) (int .root.Values.port) }}
{{- end }}

{{- define "ferrite.serviceAccountName" -}}
{{- $sa := index .root.Values .tier "serviceAccount" }}
{{- if $sa.create }}
{{- default (include "ferrite.tierName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* Seconds a tier's pod may take to stop: what ferrite itself waits (open connections, and
an ingester's drain) plus a margin, so the kubelet never kills a pod that is still
persisting within its configured limits. */}}
{{- define "ferrite.terminationGracePeriodSeconds" -}}
{{- $v := index .root.Values .tier }}
{{- $seconds := add (int $v.shutdownGraceSeconds) (int .root.Values.terminationGraceMarginSeconds) }}
{{- if eq .tier "ingester" }}
{{- $seconds = add $seconds (int $v.drainTimeoutSeconds) }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/* --- Secrets ------------------------------------------------------------------------- */}}

{{- define "ferrite.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "ferrite.fullname" .)) .Values.auth.adminToken.existingSecret }}
{{- end }}

{{- define "ferrite.devSecret" -}}
{{- printf "%s-dev" (include "ferrite.fullname" .) }}
{{- end }}

{{/* The Secret and key holding the catalog's PostgreSQL DSN, as "name key"; "" when none
is configured (the catalog then stops at start, saying --catalog-dsn is missing, and NOTES
warns). */}}
{{- define "ferrite.dsnRef" -}}
{{- if .Values.dev.enabled }}
{{- printf "%s catalog-dsn" (include "ferrite.devSecret" .) }}
{{- else if .Values.postgresql.existingSecret }}
{{- printf "%s %s" .Values.postgresql.existingSecret .Values.postgresql.existingSecretKey }}
{{- else if .Values.postgresql.dsn }}
{{- printf "%s-catalog dsn" (include "ferrite.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret and keys of the S3 credentials, as "name idKey secretKey", or "" when the
environment's credentials are used. */}}
{{- define "ferrite.s3CredentialsRef" -}}
{{- $s3 := .Values.objectStore.s3 }}
{{- if .Values.dev.enabled }}
{{- printf "%s minio-root-user minio-root-password" (include "ferrite.devSecret" .) }}
{{- else if ne .Values.objectStore.type "s3" }}
{{- else if $s3.existingSecret }}
{{- printf "%s %s %s" $s3.existingSecret $s3.accessKeyIdKey $s3.secretAccessKeyKey }}
{{- else if $s3.accessKeyId }}
{{- printf "%s-object-store access-key-id secret-access-key" (include "ferrite.fullname" .) }}
{{- end }}
{{- end }}

{{/* --- env ----------------------------------------------------------------------------- */}}

{{/* One env entry with a literal value. Call with (list "NAME" value). */}}
{{- define "ferrite.envValue" -}}
- name: {{ index . 0 }}
  value: {{ index . 1 | toString | quote }}
{{- end }}

{{/* A number of seconds as ferrite's flags take it: whole numbers without a fraction or an
exponent (values files give every number as a float: 3600, not 3.6e+03), fractions as they
are (0.5). `--set x=2.5` gives the string "2.5", which passes through unchanged. */}}
{{- define "ferrite.seconds" -}}
{{- if kindIs "string" . }}
{{- . }}
{{- else if eq (float64 .) (floor .) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* Settings every tier has. Call with (dict "root" $ "tier" "router"). */}}
{{- define "ferrite.commonEnv" -}}
{{- $root := .root }}
{{- $v := index $root.Values .tier }}
{{- include "ferrite.envValue" (list "FERRITE_BIND" (printf "%s:%d" $root.Values.bindAddress (int $root.Values.port))) }}
{{ include "ferrite.envValue" (list "FERRITE_SHUTDOWN_GRACE_SECONDS" (int $v.shutdownGraceSeconds)) }}
{{ include "ferrite.envValue" (list "FERRITE_LOG" $root.Values.logFilter) }}
{{ include "ferrite.envValue" (list "FERRITE_LOG_FORMAT" $root.Values.logFormat) }}
{{- with $root.Values.tracing.endpoint }}
{{ include "ferrite.envValue" (list "FERRITE_TRACES_ENDPOINT" .) }}
{{ include "ferrite.envValue" (list "FERRITE_TRACES_SAMPLING_RATIO" (toString $root.Values.tracing.samplingRatio)) }}
{{- end }}
{{- if $root.Values.auth.enabled }}
{{ include "ferrite.envValue" (list "FERRITE_ADMIN_TOKEN_FILE" "/etc/ferrite/admin-token/admin-token") }}
{{- else }}
{{ include "ferrite.envValue" (list "FERRITE_WITHOUT_AUTH" "true") }}
{{- end }}
{{- if $root.Values.tls.enabled }}
{{ include "ferrite.envValue" (list "FERRITE_TLS_CERT" "/etc/ferrite/tls/tls.crt") }}
{{ include "ferrite.envValue" (list "FERRITE_TLS_KEY" "/etc/ferrite/tls/tls.key") }}
{{- if $root.Values.tls.caKey }}
{{ include "ferrite.envValue" (list "FERRITE_TLS_CA" "/etc/ferrite/tls/ca.crt") }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespace whose EndpointSlices Kubernetes discovery watches: the pod's own. */}}
{{- define "ferrite.namespaceEnv" -}}
- name: FERRITE_K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* The object store of ingesters, queriers and the compactor. */}}
{{- define "ferrite.objectStoreEnv" -}}
{{- $s3 := .Values.objectStore.s3 }}
{{- if .Values.dev.enabled }}
{{- include "ferrite.envValue" (list "FERRITE_OBJECT_STORE" "s3") }}
{{ include "ferrite.envValue" (list "FERRITE_BUCKET" .Values.dev.minio.bucket) }}
{{ include "ferrite.envValue" (list "FERRITE_S3_ENDPOINT" (printf "http://%s-dev-minio:9000" (include "ferrite.fullname" .))) }}
{{ include "ferrite.envValue" (list "FERRITE_S3_REGION" "us-east-1") }}
{{ include "ferrite.envValue" (list "FERRITE_S3_ALLOW_HTTP" "true") }}
{{- else if eq .Values.objectStore.type "file" }}
{{- include "ferrite.envValue" (list "FERRITE_OBJECT_STORE" "file") }}
{{ include "ferrite.envValue" (list "FERRITE_OBJECT_STORE_DIR" "/var/lib/ferrite/objects") }}
{{- else }}
{{- include "ferrite.envValue" (list "FERRITE_OBJECT_STORE" "s3") }}
{{- with $s3.bucket }}
{{ include "ferrite.envValue" (list "FERRITE_BUCKET" .) }}
{{- end }}
{{- with $s3.endpoint }}
{{ include "ferrite.envValue" (list "FERRITE_S3_ENDPOINT" .) }}
{{- end }}
{{ include "ferrite.envValue" (list "FERRITE_S3_REGION" $s3.region) }}
{{- if $s3.allowHttp }}
{{ include "ferrite.envValue" (list "FERRITE_S3_ALLOW_HTTP" "true") }}
{{- end }}
{{- end }}
{{- with (include "ferrite.s3CredentialsRef" .) }}
{{- $ref := splitList " " . }}
- name: FERRITE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ index $ref 0 }}
      key: {{ index $ref 1 }}
- name: FERRITE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ index $ref 0 }}
      key: {{ index $ref 2 }}
{{- end }}
{{- end }}

{{/* --- pod pieces ---------------------------------------------------------------------- */}}

{{/* The pod spec fields every tier shares (not the containers). Call with
(dict "root" $ "tier" "router" "automount" true). */}}
{{- define "ferrite.podCommon" -}}
{{- $root := .root }}
{{- $v := index $root.Values .tier -}}
serviceAccountName: {{ include "ferrite.serviceAccountName" . }}
automountServiceAccountToken: {{ .automount }}
{{- /* Service links would put FERRITE_ROUTER_PORT=tcp://... and the like into ferrite's own
variable namespace for a release named `ferrite`; peers are found through the API. */}}
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "ferrite.terminationGracePeriodSeconds" . }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $v.topologySpreadConstraints | nindent 2 }}
{{- else if $root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
    topologyKey: {{ $root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "ferrite.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}

{{/* Pod metadata: labels and annotations. The checksum annotation restarts pods when the
Secrets the chart generates from values change. */}}
{{- define "ferrite.podMetadata" -}}
{{- $v := index .root.Values .tier -}}
labels:
  {{- include "ferrite.labels" . | nindent 2 }}
  {{- with $v.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "ferrite.configChecksum" .root }}
  {{- with $v.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* A digest of the values that end up in chart-made Secrets (not the generated token,
which only changes when its Secret is deleted). */}}
{{- define "ferrite.configChecksum" -}}
{{- $in := dict "dsn" .Values.postgresql.dsn "s3" .Values.objectStore.s3 "auth" .Values.auth "tls" .Values.tls "dev" .Values.dev.enabled }}
{{- toJson $in | sha256sum | trunc 16 | quote }}
{{- end }}

{{/* The container fields every tier shares: image, port, probes, resources, security. */}}
{{- define "ferrite.containerCommon" -}}
{{- $root := .root }}
{{- $v := index $root.Values .tier }}
{{- $scheme := include "ferrite.scheme" $root | upper -}}
image: {{ include "ferrite.image" $root }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
args: ["run", {{ .tier | quote }}]
ports:
  - name: http
    containerPort: {{ $root.Values.port }}
    protocol: TCP
readinessProbe:
  httpGet:
    path: /ready
    port: http
    scheme: {{ $scheme }}
  {{- toYaml $root.Values.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /health
    port: http
    scheme: {{ $scheme }}
  {{- toYaml $root.Values.probes.liveness | nindent 2 }}
resources:
  {{- toYaml $v.resources | nindent 2 }}
securityContext:
  {{- toYaml $root.Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* Mounts every tier has: /tmp, the admin token, the TLS files. */}}
{{- define "ferrite.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.auth.enabled }}
- name: admin-token
  mountPath: /etc/ferrite/admin-token
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/ferrite/tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "ferrite.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.auth.enabled }}
- name: admin-token
  secret:
    secretName: {{ include "ferrite.adminTokenSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.adminToken.key }}
        path: admin-token
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.tls.certKey }}
        path: tls.crt
      - key: {{ .Values.tls.keyKey }}
        path: tls.key
      {{- if .Values.tls.caKey }}
      - key: {{ .Values.tls.caKey }}
        path: ca.crt
      {{- end }}
{{- end }}
{{- end }}

{{/* The shared object-store directory of ingesters, queriers and the compactor
(objectStore.type=file). */}}
{{- define "ferrite.objectStoreVolumeMounts" -}}
{{- if and (not .Values.dev.enabled) (eq .Values.objectStore.type "file") }}
- name: objects
  mountPath: /var/lib/ferrite/objects
{{- end }}
{{- end }}

{{- define "ferrite.objectStoreVolumes" -}}
{{- if and (not .Values.dev.enabled) (eq .Values.objectStore.type "file") }}
- name: objects
  persistentVolumeClaim:
    claimName: {{ .Values.objectStore.file.existingClaim }}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget's budget. Call with a tier's pdb block. */}}
{{- define "ferrite.pdbBudget" -}}
{{- if not (kindIs "invalid" .minAvailable) -}}
minAvailable: {{ .minAvailable }}
{{- else -}}
maxUnavailable: {{ .maxUnavailable }}
{{- end }}
{{- end }}

{{/* Settings the schema cannot check (they relate values to each other). */}}
{{- define "ferrite.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret: the Secret with the certificate and key" }}
{{- end }}
{{- if and (not .Values.dev.enabled) (eq .Values.objectStore.type "file") (not .Values.objectStore.file.existingClaim) }}
{{- fail "objectStore.type=file needs objectStore.file.existingClaim: a ReadWriteMany PersistentVolumeClaim every ingester, querier and compactor mounts" }}
{{- end }}
{{- if gt (int .Values.router.replication) (int .Values.ingester.replicas) }}
{{- fail (printf "router.replication (%d) exceeds ingester.replicas (%d): each copy of a write needs its own ingester" (int .Values.router.replication) (int .Values.ingester.replicas)) }}
{{- end }}
{{- range $tier := list "router" "querier" }}
{{- $as := index $.Values $tier "autoscaling" }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds %s.autoscaling.maxReplicas (%d)" $tier (int $as.minReplicas) $tier (int $as.maxReplicas)) }}
{{- end }}
{{- end }}
{{- $s3 := .Values.objectStore.s3 }}
{{- if and (not .Values.dev.enabled) (not $s3.existingSecret) (ne (empty $s3.accessKeyId) (empty $s3.secretAccessKey)) }}
{{- fail "objectStore.s3.accessKeyId and objectStore.s3.secretAccessKey go together: set both, or neither to use the environment's credentials" }}
{{- end }}
{{- end }}
