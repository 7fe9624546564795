{{/*
Shared templates. Each per-service file (ticketing.yaml, …) is one call of "careops.service",
which renders that service's ServiceAccount, Service, Deployment, PodDisruptionBudget,
HorizontalPodAutoscaler (when autoscaling is on) and NetworkPolicy.
*/}}

{{- define "careops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "careops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: <fullname>-<component>. Args: root, component. */}}
{{- define "careops.componentName" -}}
{{- printf "%s-%s" (include "careops.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "careops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "careops.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "careops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "careops.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: careops
{{- end -}}

{{- define "careops.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $repository := .svc.image.repository -}}
{{- if $registry -}}{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository -}}{{- end -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion (toString .svc.image.tag)) -}}
{{- end -}}

{{/* A NetworkPolicyPeer from {namespaceSelector, podSelector}; no namespaceSelector: same namespace. */}}
{{- define "careops.peer" -}}
{{- $peer := dict "podSelector" (default dict .podSelector) -}}
{{- with .namespaceSelector }}{{- $_ := set $peer "namespaceSelector" . -}}{{- end -}}
{{- list $peer | toYaml -}}
{{- end -}}

{{- define "careops.policiesPath" -}}/etc/careops/policies{{- end -}}

{{- define "careops.tlsPath" -}}/etc/careops/tls{{- end -}}

{{- define "careops.internalIdentityPath" -}}/etc/careops/internal-identity{{- end -}}

{{/* The Secret of the internal identity key pair; rendering stops without one. */}}
{{- define "careops.internalIdentitySecret" -}}
{{- $secret := .Values.internalIdentity.existingSecret -}}
{{- if not $secret -}}
{{- fail "internalIdentity.existingSecret is required: a Secret with signing-key.pem (the gateway's) and verify-key.pem (the services'); see docs/deploy.md#internal-identity" -}}
{{- end -}}
{{- $secret -}}
{{- end -}}

{{/*
One service. Args (dict):
  root       the chart context ($)
  key        its values key (ticketing, customerProfile, incidentCrisis, qualityScoring, gateway)
  component  its name in object names and labels (ticketing, customer-profile, …)
  envPrefix  CAREOPS_<envPrefix>_GRPC_PORT / _METRICS_PORT, as the service's settings read them
*/}}
{{- define "careops.service" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := index $v .key -}}
{{- if $svc.enabled -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $name := include "careops.componentName" $ctx -}}
{{- $isGateway := eq .key "gateway" -}}
{{- $tlsSecret := "" -}}
{{- if $isGateway }}{{- $tlsSecret = $svc.tls.secretName -}}{{- end -}}
{{- $identitySecret := include "careops.internalIdentitySecret" $root -}}
{{- /* The gateway holds the private key and signs; a service holds only the public key. */ -}}
{{- $identityFile := ternary "signing-key.pem" "verify-key.pem" $isGateway -}}
{{- $split := eq (default "all" $svc.role) "split" -}}
{{- if and $split (not $v.database.existingSecret) -}}
{{- fail (printf "%s.role split needs database.existingSecret: its api and worker pods share the read models" .key) -}}
{{- end -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "careops.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $svc.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ $svc.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- if $isGateway }}
    - name: http
      port: {{ $svc.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
---
{{ include "careops.deployment" (dict "root" $root "svc" $svc "key" .key "component" .component "envPrefix" .envPrefix "ctx" $ctx "account" $name "role" (ternary "api" "" $split) "autoscaled" $svc.autoscaling.enabled "replicas" $svc.replicas "resources" $svc.resources) }}
---
{{ include "careops.pdb" (dict "root" $root "component" .component "maxUnavailable" $svc.pdb.maxUnavailable) }}
{{- if $svc.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $v.networkPolicy.enabled }}
---
{{ include "careops.networkPolicy" (dict "root" $root "svc" $svc "ctx" $ctx "isGateway" $isGateway "serves" true) }}
{{- end }}
{{- if $v.serviceMonitor.enabled }}
---
{{ include "careops.serviceMonitor" (dict "ctx" $ctx) }}
{{- end }}
{{- if $split }}
{{- $worker := dict "root" $root "component" (printf "%s-worker" .component) }}
{{- $workerName := include "careops.componentName" $worker }}
---
# The workers' /metrics (headless: nothing calls them; the ServiceMonitor finds the pods by it).
apiVersion: v1
kind: Service
metadata:
  name: {{ $workerName }}
  labels:
    {{- include "careops.labels" $worker | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "careops.selectorLabels" $worker | nindent 4 }}
  ports:
    - name: metrics
      port: {{ $svc.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
---
{{ include "careops.deployment" (dict "root" $root "svc" $svc "key" .key "component" .component "envPrefix" .envPrefix "ctx" $worker "account" $name "role" "worker" "autoscaled" false "replicas" $svc.worker.replicas "resources" (default $svc.resources $svc.worker.resources)) }}
---
{{ include "careops.pdb" (dict "root" $root "component" (printf "%s-worker" .component) "maxUnavailable" 1) }}
{{- if $v.networkPolicy.enabled }}
---
{{ include "careops.networkPolicy" (dict "root" $root "svc" $svc "ctx" $worker "isGateway" false "serves" false) }}
{{- end }}
{{- if $v.serviceMonitor.enabled }}
---
{{ include "careops.serviceMonitor" (dict "ctx" $worker) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}


{{/*
One Deployment of a service. Args (dict):
  root, svc, key, component, envPrefix   as for "careops.service"
  ctx         this Deployment's name and labels: {root, component}
  account     its ServiceAccount
  role        CAREOPS_ROLE: "" (the default, all), api or worker
  autoscaled  replicas are the HPA's; else `replicas`
  resources   the container's requests and limits
*/}}
{{- define "careops.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := .svc -}}
{{- $ctx := .ctx -}}
{{- $name := include "careops.componentName" $ctx -}}
{{- $container := .component -}}
{{- $envPrefix := .envPrefix -}}
{{- $role := .role -}}
{{- $resources := .resources -}}
{{- $isGateway := eq .key "gateway" -}}
{{- $tlsSecret := "" -}}
{{- if $isGateway }}{{- $tlsSecret = $svc.tls.secretName -}}{{- end -}}
{{- $identitySecret := include "careops.internalIdentitySecret" $root -}}
{{- /* The gateway holds the private key and signs; a service holds only the public key. */ -}}
{{- $identityFile := ternary "signing-key.pem" "verify-key.pem" $isGateway }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "careops.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "careops.labels" $ctx | nindent 8 }}
      annotations:
        checksum/policies: {{ include (print $root.Template.BasePath "/configmap-policies.yaml") $root | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $svc.metricsPort | quote }}
        prometheus.io/path: /metrics
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ .account }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $v.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      {{- if $v.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $topologyKey := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - maxSkew: {{ $v.topologySpread.maxSkew }}
          topologyKey: {{ $topologyKey }}
          whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "careops.selectorLabels" $ctx | nindent 14 }}
          matchLabelKeys: [pod-template-hash]
        {{- end }}
      {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $container }}
          image: {{ include "careops.image" (dict "root" $root "svc" $svc) | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          ports:
            - name: grpc
              containerPort: {{ $svc.grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $svc.metricsPort }}
              protocol: TCP
            {{- if $isGateway }}
            - name: http
              containerPort: {{ $svc.httpPort }}
              protocol: TCP
            {{- end }}
          env:
            - name: CAREOPS_GRPC_HOST
              value: "0.0.0.0"
            - name: CAREOPS_{{ $envPrefix }}_GRPC_PORT
              value: {{ $svc.grpcPort | quote }}
            - name: CAREOPS_{{ $envPrefix }}_METRICS_PORT
              value: {{ $svc.metricsPort | quote }}
            {{- if $isGateway }}
            - name: CAREOPS_{{ $envPrefix }}_HTTP_PORT
              value: {{ $svc.httpPort | quote }}
            {{- if $tlsSecret }}
            - name: CAREOPS_TLS_CERT_FILE
              value: {{ include "careops.tlsPath" $root }}/tls.crt
            - name: CAREOPS_TLS_KEY_FILE
              value: {{ include "careops.tlsPath" $root }}/tls.key
            {{- end }}
            {{- range $backend := list (list "ticketing" "ticketing" "TICKETING") (list "customerProfile" "customer-profile" "CUSTOMER") (list "incidentCrisis" "incident-crisis" "INCIDENT") (list "qualityScoring" "quality-scoring" "QUALITY") }}
            {{- $b := index $v (index $backend 0) }}
            {{- if $b.enabled }}
            - name: CAREOPS_{{ index $backend 2 }}_ADDR
              value: {{ printf "%s:%v" (include "careops.componentName" (dict "root" $root "component" (index $backend 1))) $b.grpcPort | quote }}
            {{- end }}
            {{- end }}
            {{- end }}
            - name: CAREOPS_NATS_URL
              value: {{ $v.nats.url | quote }}
            - name: CAREOPS_STREAM_REPLICAS
              value: {{ $v.streamReplicas | quote }}
            - name: CAREOPS_DATA_DIR
              value: /tmp/careops
            - name: CAREOPS_LOG_LEVEL
              value: {{ $v.logLevel | quote }}
            {{- with $role }}
            - name: CAREOPS_ROLE
              value: {{ . | quote }}
            {{- end }}
            {{- if eq $role "worker" }}
            - name: CAREOPS_LEASE_SECONDS
              value: {{ $svc.worker.leaseSeconds | quote }}
            {{- end }}
            {{- with $v.otel.endpoint }}
            - name: CAREOPS_OTEL_ENDPOINT
              value: {{ . | quote }}
            {{- end }}
            - name: {{ ternary "CAREOPS_INTERNAL_SIGNING_KEY_FILE" "CAREOPS_INTERNAL_VERIFY_KEY_FILE" $isGateway }}
              value: {{ printf "%s/%s" (include "careops.internalIdentityPath" $root) $identityFile | quote }}
            {{- if $v.database.existingSecret }}
            - name: CAREOPS_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ $v.database.existingSecret }}
                  key: {{ $v.database.key }}
            {{- end }}
            {{- range $envName, $file := $svc.configFiles }}
            - name: {{ $envName }}
              value: {{ printf "%s/%s" (include "careops.policiesPath" $root) $file | quote }}
            {{- end }}
            {{- range $envName, $ref := $svc.secretEnv }}
            {{- $secret := index $v.secrets $ref }}
            - name: {{ $envName }}
              valueFrom:
                secretKeyRef:
                  name: {{ $secret.existingSecret }}
                  key: {{ $secret.key }}
                  optional: {{ $secret.optional }}
            {{- end }}
            {{- range $envName, $value := $svc.env }}
            - name: {{ $envName }}
              value: {{ $value | toString | quote }}
            {{- end }}
          {{- $grpc := dict "grpc" (dict "port" (int $svc.grpcPort)) }}
          {{- if $tlsSecret }}
          {{- /* The kubelet's gRPC probe has no TLS; its HTTPS probe does not verify the cert. */}}
          {{- $grpc = dict "httpGet" (dict "path" "/healthz" "port" "http" "scheme" "HTTPS") }}
          {{- end }}
          startupProbe:
            {{- toYaml $grpc | nindent 12 }}
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
          readinessProbe:
            {{- toYaml $grpc | nindent 12 }}
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
          livenessProbe:
            {{- toYaml $grpc | nindent 12 }}
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: policies
              mountPath: {{ include "careops.policiesPath" $root }}
              readOnly: true
            {{- if $tlsSecret }}
            - name: tls
              mountPath: {{ include "careops.tlsPath" $root }}
              readOnly: true
            {{- end }}
            - name: internal-identity
              mountPath: {{ include "careops.internalIdentityPath" $root }}
              readOnly: true
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpVolume.sizeLimit }}
        - name: policies
          configMap:
            name: {{ include "careops.fullname" $root }}-policies
        {{- if $tlsSecret }}
        - name: tls
          secret:
            secretName: {{ $tlsSecret }}
            defaultMode: 0440
        {{- end }}
        - name: internal-identity
          secret:
            secretName: {{ $identitySecret }}
            defaultMode: 0440
            items:
              - key: {{ $identityFile }}
                path: {{ $identityFile }}
{{- end -}}

{{/* A PodDisruptionBudget. Args: root, component, maxUnavailable. */}}
{{- define "careops.pdb" -}}
{{- $ctx := dict "root" .root "component" .component -}}
{{- $name := include "careops.componentName" $ctx }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ .maxUnavailable }}
  selector:
    matchLabels:
      {{- include "careops.selectorLabels" $ctx | nindent 6 }}
{{- end -}}

{{/*
The NetworkPolicy of a service's pods. Args: root, svc, ctx, isGateway, serves (the gateway may
call its gRPC port: false for `--role worker` pods, which serve only health and /metrics).
*/}}
{{- define "careops.networkPolicy" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := .svc -}}
{{- $ctx := .ctx -}}
{{- $name := include "careops.componentName" $ctx -}}
{{- $isGateway := .isGateway -}}
{{- $np := $v.networkPolicy }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "careops.selectorLabels" $ctx | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if $isGateway }}
    # The gateway is the edge: its gRPC and HTTP ports are open to clients.
    - ports:
        - {protocol: TCP, port: {{ $svc.grpcPort }}}
        - {protocol: TCP, port: {{ $svc.httpPort }}}
    {{- else if .serves }}
    # Only the gateway calls a service's gRPC port.
    - from:
        - podSelector:
            matchLabels:
              {{- include "careops.selectorLabels" (dict "root" $root "component" "gateway") | nindent 14 }}
      ports:
        - {protocol: TCP, port: {{ $svc.grpcPort }}}
    {{- end }}
    # Prometheus scrapes the metrics port.
    - from:
        {{- include "careops.peer" $np.prometheus | nindent 8 }}
      ports:
        - {protocol: TCP, port: {{ $svc.metricsPort }}}
  egress:
    # DNS
    - to:
        {{- include "careops.peer" $np.dns | nindent 8 }}
      ports:
        - {protocol: UDP, port: 53}
        - {protocol: TCP, port: 53}
    # NATS JetStream (the event log)
    - to:
        {{- include "careops.peer" $np.nats | nindent 8 }}
      ports:
        - {protocol: TCP, port: {{ $np.nats.port }}}
    # The read-model database
    - ports:
        - {protocol: TCP, port: {{ $np.database.port }}}
      {{- with $np.database.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    # The OpenTelemetry collector (OTLP/gRPC)
    - to:
        {{- include "careops.peer" $np.otel | nindent 8 }}
      ports:
        - {protocol: TCP, port: {{ $np.otel.port }}}
    {{- if $isGateway }}
    # The gateway calls the services' gRPC ports.
    - to:
        - podSelector:
            matchLabels:
              {{- include "careops.selectorLabels" (dict "root" $root "component" "") | nindent 14 }}
      ports:
        {{- range $key := list "ticketing" "customerProfile" "incidentCrisis" "qualityScoring" }}
        - {protocol: TCP, port: {{ (index $v $key).grpcPort }}}
        {{- end }}
    {{- end }}
    {{- with $svc.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* A ServiceMonitor of the Service called like `ctx`. Args: ctx. */}}
{{- define "careops.serviceMonitor" -}}
{{- $v := .ctx.root.Values -}}
{{- $ctx := .ctx -}}
{{- $name := include "careops.componentName" $ctx }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $name }}
  labels:
    {{- include "careops.labels" $ctx | nindent 4 }}
    {{- with $v.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "careops.selectorLabels" $ctx | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $v.serviceMonitor.interval }}
      scrapeTimeout: {{ $v.serviceMonitor.scrapeTimeout }}
{{- end -}}
