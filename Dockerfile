# syntax=docker/dockerfile:1.7
#
# Multi-stage build for dcports.
#   docker build -t dcports .
#   docker run --rm dcports migrate      # run migrations
#   docker run -p 8080:8080 dcports      # serve (default)

############################
# Builder
############################
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Copy only what the build needs (see .dockerignore for what is excluded).
COPY Cargo.toml Cargo.lock ./
# sqlx-core with the TCP_NODELAY fix, patched in by Cargo.toml.
COPY vendor/ vendor/
COPY entity/ entity/
COPY migration/ migration/
COPY src/ src/
COPY config/ config/
# Cargo.toml declares an explicit [[test]] target (tests/api/main.rs); copying
# tests/ keeps manifest/target resolution identical to a normal checkout.
COPY tests/ tests/

# Cache mounts keep the crates.io registry, git deps and incremental build
# artifacts between builds without baking them into layers. Because target/ is
# a cache mount (not part of the image), the binary must be copied out of it in
# the same RUN step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin dcports \
 && install -D -m 0755 target/release/dcports /out/dcports

############################
# Runtime
############################
FROM debian:bookworm-slim AS runtime

# ca-certificates: outbound TLS (rustls uses webpki roots, but keep system roots
# for anything else); curl: container HEALTHCHECK only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# Fixed, non-root uid/gid so volume ownership is predictable across hosts.
RUN groupadd --system --gid 10001 dcports \
 && useradd --system --uid 10001 --gid dcports --home-dir /app \
      --no-create-home --shell /usr/sbin/nologin dcports

WORKDIR /app

COPY --from=builder /out/dcports /usr/local/bin/dcports
COPY config/ /app/config/

# /app/data holds uploaded documents. It is created here owned by dcports so a
# fresh named volume mounted on it inherits that ownership.
RUN mkdir -p /app/data && chown dcports:dcports /app/data

ENV DCPORTS_ENV=production

USER dcports:dcports

EXPOSE 8080

# start-period gives the server time to boot (and run migrations, if any)
# before failures count.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1

ENTRYPOINT ["dcports"]
CMD ["serve"]
