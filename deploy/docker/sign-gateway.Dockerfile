# The native SSE gateway.
#   docker build -f deploy/docker/sign-gateway.Dockerfile -t wallet-mpc/sign-gateway .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sign-gateway --bin sign-gateway \
 && install -m 0755 target/release/sign-gateway /usr/local/bin/sign-gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /usr/local/bin/sign-gateway /usr/local/bin/sign-gateway
USER 10002:10002
# /health, /healthz, /readyz, /metrics and the rooms on one port.
ENV SIGN_GATEWAY_HOST=0.0.0.0 \
    SIGN_GATEWAY_PORT=8080 \
    SIGN_GATEWAY_LOG_FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sign-gateway"]
