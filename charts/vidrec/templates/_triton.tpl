{{/* Triton pod pieces shared by the KServe and Deployment modes. */}}

{{- define "vidrec.triton.initContainers" -}}
{{- $t := .Values.triton -}}
{{- $models := ternary "ranker,ranker_trt" "ranker" (eq $t.backend "tensorrt") -}}
{{ include "vidrec.modelInit" (dict "root" . "name" "model-init" "dest" "/models" "volume" "models" "subdir" "model_repository" "models" $models) }}
{{- if eq $t.backend "tensorrt" }}
- name: trt-build
  image: {{ include "vidrec.tensorrtImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [bash, /scripts/build_plan.sh]
  env:
    {{- include "vidrec.tmpEnv" . | nindent 4 }}
    - {name: MODEL_REPOSITORY, value: /models}
    - {name: PLAN_CACHE, value: /plan-cache}
    {{- include "vidrec.triton.planEnv" . | nindent 4 }}
  resources:
    {{- include "vidrec.triton.gpuResources" . | nindent 4 }}
  {{- include "vidrec.containerSecurity" . | nindent 2 }}
  volumeMounts:
    {{- include "vidrec.tmpMount" . | nindent 4 }}
    - {name: models, mountPath: /models}
    - {name: plan-cache, mountPath: /plan-cache}
    - {name: scripts, mountPath: /scripts, readOnly: true}
{{- end }}
{{- end -}}

{{- /* build_plan.sh's profile: the same for the initContainer and the plan Jobs, so a plan
built by a Job has the key the initContainer expects (and is not rebuilt). */}}
{{- define "vidrec.triton.planEnv" -}}
{{- $t := .Values.triton -}}
- {name: TRT_MIN_BATCH, value: {{ $t.tensorrt.minBatch | quote }}}
- {name: TRT_OPT_BATCH, value: {{ $t.tensorrt.optBatch | quote }}}
- {name: TRT_MAX_BATCH, value: {{ $t.tensorrt.maxBatch | quote }}}
- {name: TRT_FP16, value: {{ ternary "1" "0" $t.tensorrt.fp16 | quote }}}
- {name: TRT_INPUT_NAME, value: {{ $t.tensorrt.inputName | quote }}}
{{- end -}}

{{- define "vidrec.triton.gpuResources" -}}
{{- $t := .Values.triton -}}
requests:
  {{- toYaml $t.tensorrt.resources.requests | nindent 2 }}
  {{- if $t.gpu.enabled }}
  {{ $t.gpu.resourceName }}: {{ $t.gpu.count }}
  {{- end }}
limits:
  {{- toYaml $t.tensorrt.resources.limits | nindent 2 }}
  {{- if $t.gpu.enabled }}
  {{ $t.gpu.resourceName }}: {{ $t.gpu.count }}
  {{- end }}
{{- end -}}

{{- define "vidrec.triton.args" -}}
{{- $t := .Values.triton -}}
- --model-repository=/models
- --model-control-mode=explicit
- --load-model={{ include "vidrec.tritonModel" . }}
{{- if eq $t.backend "onnxruntime" }}
{{- /* ranker/configs/onnxruntime.pbtxt, written with the repository: the native ORT backend */}}
- --model-config-name=onnxruntime
{{- end }}
- --http-port={{ $t.httpPort }}
- --grpc-port={{ $t.grpcPort }}
{{- if $t.grpcMaxConnectionAgeMs }}
{{- /* Clients re-resolve the headless Service when a connection closes: new pods join. */}}
- --grpc-max-connection-age={{ $t.grpcMaxConnectionAgeMs | int64 }}
- --grpc-max-connection-age-grace={{ $t.grpcMaxConnectionAgeGraceMs | int64 }}
{{- end }}
- --metrics-port={{ $t.metricsPort }}
- --allow-metrics=true
- --allow-gpu-metrics={{ $t.gpu.enabled }}
- --strict-readiness=true
- --exit-timeout-secs=30
- --backend-config=python,shm-region-prefix-name=vidrec_
{{- range $t.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{- define "vidrec.triton.resources" -}}
{{- $t := .Values.triton -}}
requests:
  {{- toYaml $t.resources.requests | nindent 2 }}
  {{- if $t.gpu.enabled }}
  {{ $t.gpu.resourceName }}: {{ $t.gpu.count }}
  {{- end }}
limits:
  {{- toYaml $t.resources.limits | nindent 2 }}
  {{- if $t.gpu.enabled }}
  {{ $t.gpu.resourceName }}: {{ $t.gpu.count }}
  {{- end }}
{{- end -}}

{{- define "vidrec.triton.probes" -}}
startupProbe:
  httpGet: {path: /v2/health/ready, port: {{ .Values.triton.httpPort }}}
  periodSeconds: 5
  failureThreshold: 120
livenessProbe:
  httpGet: {path: /v2/health/live, port: {{ .Values.triton.httpPort }}}
  periodSeconds: 10
readinessProbe:
  httpGet: {path: /v2/health/ready, port: {{ .Values.triton.httpPort }}}
  periodSeconds: 5
{{- end -}}

{{- define "vidrec.triton.ports" -}}
- {name: http, containerPort: {{ .Values.triton.httpPort }}, protocol: TCP}
- {name: grpc, containerPort: {{ .Values.triton.grpcPort }}, protocol: TCP}
- {name: metrics, containerPort: {{ .Values.triton.metricsPort }}, protocol: TCP}
{{- end -}}

{{- define "vidrec.triton.mounts" -}}
{{ include "vidrec.tmpMount" . }}
- {name: models, mountPath: /models}
- {name: dshm, mountPath: /dev/shm}
{{- end -}}

{{- define "vidrec.triton.volumes" -}}
{{ include "vidrec.tmpVolume" . }}
- name: models
  emptyDir: {sizeLimit: 10Gi}
- name: dshm
  emptyDir: {medium: Memory, sizeLimit: 1Gi}
{{- if eq .Values.modelStore.type "pvc" }}
- name: store
  persistentVolumeClaim: {claimName: {{ .Values.modelStore.pvc.claimName }}, readOnly: true}
{{- end }}
{{- if eq .Values.triton.backend "tensorrt" }}
- name: scripts
  configMap: {name: {{ include "vidrec.fullname" . }}-trt-build, defaultMode: 0555}
- name: plan-cache
  {{- if .Values.triton.tensorrt.cache.existingClaim }}
  persistentVolumeClaim: {claimName: {{ .Values.triton.tensorrt.cache.existingClaim }}}
  {{- else }}
  emptyDir: {sizeLimit: 5Gi}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "vidrec.triton.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
