# syntax=docker/dockerfile:1
# Build: make docker (passes VERSION), or docker build --build-arg VERSION=v1.2.3 -t junction .
# Run:   docker run --stop-timeout 30 -p 8080:8080 -v junction-data:/data junction
# With the admin API (health, metrics, /api) published, behind a token:
#        docker run --stop-timeout 30 -p 8080:8080 -p 9090:9090 \
#          -e JUNCTION_ADMIN_LISTEN=0.0.0.0:9090 -e JUNCTION_ADMIN_TOKEN=$(openssl rand -hex 32) \
#          -v junction-data:/data junction
#
# Stopping: on SIGTERM junction stops taking events and drains deliveries in
# flight for up to 15 s before it closes the journal. Docker kills it after
# 10 s by default, so give it longer: docker run --stop-timeout 30,
# docker stop -t 30, compose stop_grace_period: 30s, Kubernetes
# terminationGracePeriodSeconds: 30 (its default). Anything above 15 s plus
# a few seconds to close works; a kill before is safe (accepted events stay
# in the journal) but deliveries in flight are redone after restart.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/junction ./cmd/junction \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/junction /usr/local/bin/junction
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
# The built-in default listens on loopback; in a container the ingress
# listens on all interfaces (or mount a config at /etc/junction/junction.yaml
# and pass --config). The admin API stays on the container's loopback (the
# HEALTHCHECK below reaches it there): junction refuses to serve it beyond
# loopback without a token. To publish it, set JUNCTION_ADMIN_LISTEN=0.0.0.0:9090
# and JUNCTION_ADMIN_TOKEN (from a secret): /api/*, the console and /metrics
# then need "Authorization: Bearer TOKEN"; /healthz and /readyz stay open.
ENV JUNCTION_HTTP_LISTEN=0.0.0.0:8080 \
    JUNCTION_ADMIN_LISTEN=127.0.0.1:9090 \
    JUNCTION_JOURNAL_DIR=/data
USER 65532:65532
EXPOSE 8080 9090
VOLUME ["/data"]
STOPSIGNAL SIGTERM
# Distroless has no shell or curl: junction asks its own admin API
# (GET /healthz; exit 0 or 1). The admin URL comes from ./junction.yaml
# (WORKDIR /data) or JUNCTION_ADMIN_LISTEN, else http://127.0.0.1:9090. With
# serve --config FILE and another admin.listen, give the same config to the
# check in exec form, e.g. in compose:
#   healthcheck: {test: ["CMD", "/usr/local/bin/junction", "healthcheck", "-c", "/etc/junction/junction.yaml"]}
# (docker run --health-cmd is shell form, which distroless cannot run.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/junction", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/junction"]
CMD ["serve"]
