{{/* Names and labels. */}}
{{- define "vidrec.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vidrec.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "recommender") */}}
{{- define "vidrec.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vidrec.componentLabels" -}}
{{ include "vidrec.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: (dict "root" $ "image" .Values.image.recommender). Never :latest. */}}
{{- define "vidrec.image" -}}
{{- $img := .image -}}
{{- $ref := printf "%s/%s" .root.Values.image.registry $img.repository -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "vidrec.tensorrtImage" -}}
{{- $t := .Values.triton.tensorrt.image -}}
{{- printf "%s:%s" $t.repository (default (printf "%s-py3" .Values.triton.ngcRelease) $t.tag) -}}
{{- end -}}

{{- define "vidrec.secretName" -}}
{{- default (printf "%s-secrets" (include "vidrec.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "vidrec.redisSecretName" -}}
{{- default (include "vidrec.secretName" .) .Values.redis.password.existingSecret -}}
{{- end -}}

{{- define "vidrec.tritonModel" -}}
{{- if eq .Values.triton.backend "tensorrt" -}}ranker_trt{{- else -}}ranker{{- end -}}
{{- end -}}

{{- define "vidrec.tritonHost" -}}
{{- printf "%s-triton" (include "vidrec.fullname" .) -}}
{{- end -}}

{{- /* Headless: its DNS name answers every ready Triton pod's IP, for client-side balancing. */ -}}
{{- define "vidrec.tritonHeadless" -}}
{{- printf "%s-triton-headless" (include "vidrec.fullname" .) -}}
{{- end -}}

{{- /* The recommender's ranker target: the Triton pods (serving splits), or what splits upstream
(the InferenceService's address, whose ingress applies KServe's split; a Gateway). */ -}}
{{- define "vidrec.tritonGrpcTarget" -}}
{{- $path := .Values.routing.rankerPath -}}
{{- if and (eq $path "kserve") (ne .Values.triton.mode "kserve") }}{{ fail "routing.rankerPath=kserve needs triton.mode=kserve (an InferenceService to call)" }}{{ end -}}
{{- if ne $path "triton" -}}
{{- required (printf "routing.upstreamTarget is required when routing.rankerPath=%s: the address where the split applies" $path) .Values.routing.upstreamTarget -}}
{{- else -}}
{{- printf "dns:///%s.%s.svc.cluster.local:%d" (include "vidrec.tritonHeadless" .) .Release.Namespace (int .Values.triton.grpcPort) -}}
{{- end -}}
{{- end -}}

{{- define "vidrec.redisUrl" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- required "redis.external.url is required when redis.mode=external" .Values.redis.external.url -}}
{{- else -}}
{{- printf "redis://%s-redis.%s.svc:%d/0" (include "vidrec.fullname" .) .Release.Namespace (int .Values.redis.bundled.port) -}}
{{- end -}}
{{- end -}}

{{/* Hardened container securityContext: non-root, read-only root filesystem, no caps. */}}
{{- define "vidrec.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "vidrec.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The writable /tmp every read-only container gets (HOME and TMPDIR live there). */}}
{{- define "vidrec.tmpVolume" -}}
- name: tmp
  emptyDir: {sizeLimit: {{ .Values.tmpSizeLimit }}}
{{- end -}}
{{- define "vidrec.tmpMount" -}}
- {name: tmp, mountPath: /tmp}
{{- end -}}
{{- define "vidrec.tmpEnv" -}}
- {name: HOME, value: /tmp/home}
- {name: TMPDIR, value: /tmp}
{{- end -}}

{{/* envFrom + secret env shared by every vidrec process. */}}
{{- define "vidrec.env" -}}
envFrom:
  - configMapRef: {name: {{ include "vidrec.fullname" . }}-env}
env:
  {{- include "vidrec.tmpEnv" . | nindent 2 }}
  {{- if .Values.redis.password.enabled }}
  - name: VIDREC_REDIS__PASSWORD
    valueFrom: {secretKeyRef: {name: {{ include "vidrec.redisSecretName" . }}, key: {{ .Values.redis.password.key }}}}
  {{- end }}
  {{- if .Values.auth.enabled }}
  - name: VIDREC_SERVING__API_KEYS
    valueFrom: {secretKeyRef: {name: {{ include "vidrec.secretName" . }}, key: api-keys}}
  - name: VIDREC_SERVING__JWT_SECRET
    valueFrom: {secretKeyRef: {name: {{ include "vidrec.secretName" . }}, key: jwt-secret}}
  {{- end }}
  - name: VIDREC_EVENTS__ID_SALT
    valueFrom: {secretKeyRef: {name: {{ include "vidrec.secretName" . }}, key: id-salt}}
  - name: VIDREC_EVENTS__LAKE_KEY
    valueFrom: {secretKeyRef: {name: {{ include "vidrec.secretName" . }}, key: lake-key}}
{{- end -}}

{{/* Artefacts for vidrec processes: the PVC read-only, or fetched by model-init into an emptyDir. */}}
{{- define "vidrec.artefactVolume" -}}
{{- if eq .Values.modelStore.type "pvc" -}}
- name: artefacts
  persistentVolumeClaim: {claimName: {{ .Values.modelStore.pvc.claimName }}, readOnly: true}
{{- else -}}
- name: artefacts
  emptyDir: {}
{{- end }}
{{- end -}}
{{- define "vidrec.artefactMount" -}}
{{- if eq .Values.modelStore.type "pvc" -}}
- name: artefacts
  mountPath: /artefacts
  readOnly: true
  {{- with .Values.modelStore.pvc.subPath }}
  subPath: {{ . }}
  {{- end }}
{{- else -}}
- {name: artefacts, mountPath: /artefacts, readOnly: true}
{{- end }}
{{- end -}}

{{/* model-init: fetch from the store into DEST (args: root, dest, what ("all" or a subdir), models). */}}
{{- define "vidrec.modelInit" -}}
- name: {{ .name }}
  image: {{ include "vidrec.image" (dict "root" .root "image" .root.Values.image.modelInit) }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args:
    - --source
    - {{ if eq .root.Values.modelStore.type "pvc" }}/store{{ else }}{{ required "modelStore.uri is required when modelStore.type=uri" .root.Values.modelStore.uri }}{{ end }}
    - --dest
    - {{ .dest }}
    {{- with .subdir }}
    - --subdir
    - {{ . }}
    {{- end }}
    {{- with .models }}
    - --models
    - {{ . }}
    {{- end }}
  env:
    {{- include "vidrec.tmpEnv" .root | nindent 4 }}
  {{- if and (eq .root.Values.modelStore.type "uri") .root.Values.modelStore.credentialsSecret }}
  envFrom:
    - secretRef: {name: {{ .root.Values.modelStore.credentialsSecret }}}
  {{- end }}
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {cpu: "1", memory: 1Gi}
  {{- include "vidrec.containerSecurity" .root | nindent 2 }}
  volumeMounts:
    {{- include "vidrec.tmpMount" .root | nindent 4 }}
    - {name: {{ .volume }}, mountPath: {{ .dest }}}
    {{- if eq .root.Values.modelStore.type "pvc" }}
    - name: store
      mountPath: /store
      readOnly: true
      {{- with .root.Values.modelStore.pvc.subPath }}
      subPath: {{ . }}
      {{- end }}
    {{- end }}
{{- end -}}

{{/* The ranker routing table from a ConfigMap (the gateway-table-configmap router writes it);
optional, so pods start before the first rollout creates it. */}}
{{- define "vidrec.routingMount" -}}
{{- if .Values.routing.configMap -}}
- {name: routing, mountPath: /etc/vidrec/routing, readOnly: true}
{{- end -}}
{{- end -}}
{{- define "vidrec.routingVolume" -}}
{{- if .Values.routing.configMap -}}
- name: routing
  configMap: {name: {{ .Values.routing.configMap }}, optional: true}
{{- end -}}
{{- end -}}
