# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, ship only the stripped binary on a slim Debian
# base. The image needs neither curl nor Python: the HEALTHCHECK runs `coinsphere-ml healthcheck`,
# which GETs /health/ready and exits non-zero on anything but 200.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Build the dependencies once, from the manifests only, so that a source change reuses them.
COPY Cargo.toml Cargo.lock ./
# augurs-ets, patched (vendor/augurs-ets/PATCHED.md), is a dependency like the others.
COPY vendor ./vendor
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && echo 'fn main() {}' > benches/lstm.rs \
    && echo 'fn main() {}' > benches/kernels.rs \
    && echo 'fn main() {}' > benches/store.rs \
    && cargo build --release --locked --bin coinsphere-ml \
    && rm -rf src
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin coinsphere-ml \
    && strip target/release/coinsphere-ml

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/models && chown -R app:app /app
COPY --from=build /src/target/release/coinsphere-ml /usr/local/bin/coinsphere-ml
WORKDIR /app
USER app
ENV HOST=0.0.0.0 PORT=8000 MODELS_DIR=/app/models RUST_LOG=info
VOLUME ["/app/models"]
EXPOSE 8000
# SIGTERM (docker stop) drains: in-flight requests finish, /health/ready turns 503.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["coinsphere-ml", "healthcheck"]
ENTRYPOINT ["coinsphere-ml"]
CMD ["serve"]
