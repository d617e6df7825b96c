# syntax=docker/dockerfile:1
# Build: docker build -t junction .
# Run:   docker run -p 8080:8080 -p 9090:9090 -v junction-data:/data junction
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
# The built-in default listens on loopback; in a container listen on all
# interfaces (or mount a config at /etc/junction/junction.yaml and pass --config).
ENV JUNCTION_HTTP_LISTEN=0.0.0.0:8080 \
    JUNCTION_ADMIN_LISTEN=0.0.0.0:9090 \
    JUNCTION_JOURNAL_DIR=/data
USER 65532:65532
EXPOSE 8080 9090
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/junction"]
CMD ["serve"]
