# shardgate container image.
#
#   docker build -t shardgate .
#   docker run -p 6432:6432 -p 3307:3307 \
#       -v "$PWD/shardgate.toml:/etc/shardgate/shardgate.toml:ro" shardgate

FROM rust:1-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY rules ./rules
# Declared [[bench]] targets must exist for the manifest to load.
COPY benches ./benches
RUN cargo build --release --locked --bin shardgate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin shardgate \
    && mkdir -p /etc/shardgate
COPY --from=builder /build/target/release/shardgate /usr/local/bin/shardgate
COPY rules /usr/share/shardgate/rules
USER shardgate
# PostgreSQL and MySQL front ends.
EXPOSE 6432 3307
ENTRYPOINT ["/usr/local/bin/shardgate"]
CMD ["serve", "--config", "/etc/shardgate/shardgate.toml"]
