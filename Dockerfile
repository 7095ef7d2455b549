# syntax=docker/dockerfile:1
# acdtcm, CPU build: a static pure-Go binary (CGO_ENABLED=0 -tags noxla, simplego backend)
# on distroless/static (CA certificates, tzdata, no shell, uid 65532 "nonroot").
#
#   docker build -t acdtcm:$(git describe --tags --always) \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) .
#   docker run --rm -p 8080:8080 -e ACDTCM_API_KEYS="admin:$(openssl rand -hex 24)" acdtcm:dev
#   docker run --rm -v "$PWD/photos:/photos:ro" acdtcm:dev diagnose /photos --format jsonl
#
# The default command serves on :8080 with API keys required (ACDTCM_API_KEYS or
# --api-keys-file) and keeps records under /data (mount a volume there).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# make build = CGO_ENABLED=0 go build -tags noxla -trimpath -ldflags '-s -w -X ...Version -X ...Commit'
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out \
 && make build VERSION="${VERSION}" COMMIT="${COMMIT}" BIN=/out/acdtcm \
 && /out/acdtcm version \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="acdtcm" \
      org.opencontainers.image.description="Acne grading with dermatology and TCM decision support (CPU build)" \
      org.opencontainers.image.source="https://github.com/acdtcm/acdtcm"
COPY --from=build /out/acdtcm /usr/local/bin/acdtcm
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/acdtcm"]
CMD ["serve", "--addr", ":8080", "--data-dir", "/data", "--auth", "apikey", "--log-format", "json"]
