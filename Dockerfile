# Switchboard container image: a multi-stage build, a small Debian runtime, a non-root
# user, the store on a volume, and a health check that asks /readyz through the binary
# itself (`switchboard healthcheck`, so the image needs no HTTP client).
#
#   docker build -t switchboard .
#   docker run -p 8080:8080 -v switchboard-data:/var/lib/switchboard \
#     -e SWITCHBOARD_API__ADMIN_TOKEN="$(openssl rand -hex 32)" switchboard
#
# Without SWITCHBOARD_API__ADMIN_TOKEN (or with a weak one) the container refuses to start:
# the image sets api.allow_development_token = false.
#
# docs/DEPLOY.md covers TLS (a reverse proxy in front), backups and upgrades.

FROM rust:1-bookworm AS build
WORKDIR /src
# Optional: the commit shown by the switchboard_build_info metric.
ARG SWITCHBOARD_GIT_COMMIT=unknown
ENV SWITCHBOARD_GIT_COMMIT=${SWITCHBOARD_GIT_COMMIT}
COPY . .
RUN cargo build --release --locked --bin switchboard \
    && install -D -m 0755 target/release/switchboard /out/switchboard

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid switchboard --home-dir /var/lib/switchboard \
       --shell /usr/sbin/nologin switchboard \
    && install -d -o switchboard -g switchboard -m 0700 /var/lib/switchboard
COPY --from=build /out/switchboard /usr/local/bin/switchboard
USER 10001:10001
WORKDIR /var/lib/switchboard
# ALLOW_DEVELOPMENT_TOKEN is a switch, not a secret (it refuses the development token);
# the admin token itself is given at run time, never baked into the image.
# hadolint ignore=DL3064
ENV SWITCHBOARD_SERVER__LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_STORE__PATH=/var/lib/switchboard/data \
    SWITCHBOARD_LOG__FORMAT=json \
    SWITCHBOARD_DEMO__CUSTOMER_PAGE=false \
    SWITCHBOARD_API__ALLOW_DEVELOPMENT_TOKEN=false \
    RUST_LOG=info
VOLUME ["/var/lib/switchboard"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/switchboard", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchboard"]
