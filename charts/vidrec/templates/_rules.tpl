{{/* The SLO alert group, shared by the PrometheusRule and the promtool unit tests
(tests/chart extracts it from the rendered PrometheusRule). Metric names: serving
(src/vidrec/api/request_metrics.py) and events (src/vidrec/events/processor_metrics.py). */}}
{{- define "vidrec.alertRules" -}}
{{- $s := .Values.monitoring.prometheusRule.slo -}}
- name: vidrec-slo
  rules:
    - alert: VidrecLatencyP99High
      expr: |
        histogram_quantile(0.99, sum by (le) (rate(vidrec_request_seconds_bucket[5m]))) > {{ $s.latencyP99Seconds }}
      for: {{ $s.for }}
      labels: {severity: page, slo: latency}
      annotations:
        summary: vidrec p99 request latency above the SLA
        description: {{ printf "p99 end-to-end latency is {{ $value | humanizeDuration }} (SLA %vs) over 5m." $s.latencyP99Seconds | quote }}
    - alert: VidrecErrorRatioHigh
      expr: |
        sum(rate(vidrec_requests_total{code=~"5.."}[5m])) / sum(rate(vidrec_requests_total[5m])) > {{ $s.errorRatio }}
      for: {{ $s.for }}
      labels: {severity: page, slo: errors}
      annotations:
        summary: vidrec answers too many 5xx
        description: {{ printf "5xx ratio is {{ $value | humanizePercentage }} (budget %v)." $s.errorRatio | quote }}
    - alert: VidrecFeatureLagHigh
      expr: |
        histogram_quantile(0.99, sum by (le) (rate(vidrec_event_to_feature_lag_seconds_bucket[5m]))) > {{ $s.featureLagSeconds }}
      for: {{ $s.for }}
      labels: {severity: warn, slo: freshness}
      annotations:
        summary: engagement events reach online features late
        description: {{ printf "p99 event-to-feature lag is {{ $value | humanizeDuration }} (target %vs); check vidrec_consumer_lag." $s.featureLagSeconds | quote }}
    - alert: VidrecFallbackRateHigh
      expr: |
        sum(rate(vidrec_degraded_total[5m])) / sum(rate(vidrec_requests_total{variant!="none"}[5m])) > {{ $s.fallbackRatio }}
      for: {{ $s.for }}
      labels: {severity: warn, slo: quality}
      annotations:
        summary: vidrec serves degraded recommendations (skipped stages or fallbacks)
        description: {{ printf "degradations per answered request: {{ $value | humanizePercentage }} (budget %v); see vidrec_degraded_total by stage and reason." $s.fallbackRatio | quote }}
{{- end -}}
