# The cosigner (party 1), built with GMP from source (gmp-mpfr-sys needs m4).
#   docker build -f deploy/docker/sign-service.Dockerfile -t wallet-mpc/sign-service .
# Runs as an unprivileged user; the key store, audit log and rollback anchor live in
# /var/lib/sign-service (mount a volume there); the store key comes from a secret file.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends m4 pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cosigner is a cargo workspace of its own (GMP only).
RUN cargo build --release --locked --manifest-path sign-service/Cargo.toml --bin sign-service \
 && install -m 0755 target/release/sign-service /usr/local/bin/sign-service

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sign-service --shell /usr/sbin/nologin wallet \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/sign-service
COPY --from=build /usr/local/bin/sign-service /usr/local/bin/sign-service
USER 10001:10001
WORKDIR /var/lib/sign-service
# gRPC + gRPC-web, and the admin port (/healthz, /readyz, /metrics).
ENV SIGN_SERVICE_HOST=0.0.0.0 \
    SIGN_SERVICE_PORT=50051 \
    SIGN_SERVICE_ADMIN_LISTEN=0.0.0.0:9090 \
    SIGN_SERVICE_KEY_STORE=/var/lib/sign-service/sign-service.redb \
    SIGN_SERVICE_AUDIT_LOG=/var/lib/sign-service/audit.jsonl \
    SIGN_SERVICE_LOG_FORMAT=json
EXPOSE 50051 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sign-service"]
