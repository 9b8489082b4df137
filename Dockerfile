# syntax=docker/dockerfile:1
#
# Skiff container image: `docker build -t skiff .`
#
# Stage 1 builds a release binary with the Swift standard library linked in
# statically, on the same Debian release as the runtime stage (bookworm), so
# glibc and libhiredis match. Stage 2 is debian:bookworm-slim with only what
# the binary loads at run time: libhiredis and the CA certificates.

# ---- build ---------------------------------------------------------------
# The toolchain the project is developed with (Swift 6.3.1), on Debian 12.
FROM swift:6.3.1-bookworm AS build

# hiredis headers and pkg-config for the CHiredis system-library target.
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored on purpose in both stages: Debian
# stable keeps only the newest build of a package (security updates replace
# the old one), so a pinned version stops installing at the next point
# release. The pinned base image tags fix the distribution release instead.

WORKDIR /build

# The manifest and every target's sources (test targets too: SwiftPM checks
# that each declared target's directory exists before it builds anything).
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests

# BuildKit cache mount: dependency checkouts and build products survive
# between image builds; the binary is copied out of the cache to /staging.
RUN --mount=type=cache,target=/build/.build \
    swift build -c release --product skiff --static-swift-stdlib \
    && mkdir -p /staging \
    && cp "$(swift build -c release --show-bin-path)/skiff" /staging/ \
    # Swift's crash reporter, so a crash logs a symbolicated backtrace. Found
    # next to the toolchain's own binaries, wherever the image installed it.
    && toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")" \
    && cp "$toolchain/libexec/swift/linux/swift-backtrace-static" /staging/ \
    # Resource bundles of dependencies, if any.
    && find -L "$(swift build -c release --show-bin-path)" -maxdepth 1 -name '*.resources' -exec cp -Ra {} /staging/ \;

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim

# libhiredis0.14: the Redis protocol library skiff links (Debian's, like the
# build stage's libhiredis-dev). ca-certificates: trust store for rediss://
# when no REDIS_TLS_CA_FILE is given. BoringSSL (swift-nio-ssl) is linked in.
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends libhiredis0.14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin skiff \
    && mkdir -p /var/lib/skiff/payloads \
    && chown 10001:10001 /var/lib/skiff/payloads

WORKDIR /app
# Owned by root and not writable by the service user: the process cannot
# modify its own binary.
COPY --from=build /staging /app

# Crash backtraces on stderr, without blocking or prompting.
ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/app/swift-backtrace-static
# Cloud Run and docker-compose set PORT; 8080 is the default either way.
ENV PORT=8080 \
    LOG_FORMAT=json
EXPOSE 8080

# Numeric, so orchestrators can verify "runs as non-root" without /etc/passwd.
USER 10001:10001

# `skiff healthcheck` exits 0 when GET http://127.0.0.1:$PORT/health answers
# 200; the slim image has no curl. (Cloud Run ignores HEALTHCHECK and uses the
# probes in terraform/ instead.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/app/skiff", "healthcheck"]

ENTRYPOINT ["/app/skiff"]
CMD ["serve"]
