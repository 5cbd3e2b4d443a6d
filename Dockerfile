# syntax=docker/dockerfile:1
# blindrelay: build with the pinned Rust toolchain, run from a minimal image as non-root.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && mkdir -p src/bin \
 && echo 'fn main() {}' > src/main.rs \
 && cp src/main.rs src/bin/blindrelay-bench.rs && cp src/main.rs src/bin/bench-floor.rs \
 && cp src/main.rs src/bin/blindrelay-soak.rs \
 && mkdir -p benches && cp src/main.rs benches/hot.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# Make the real sources newer than the placeholder build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked

# distroless/cc: glibc, CA certificates, a nonroot user; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/blindrelay /app/blindrelay
COPY static /app/static
ENV HOST=0.0.0.0 \
    PORT=3001 \
    STATIC_DIR=/app/static
# 65532 is distroless's "nonroot" user.
USER 65532:65532
EXPOSE 3001
# The binary probes its own /health: the image has no curl or shell.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/app/blindrelay", "healthcheck"]
ENTRYPOINT ["/app/blindrelay"]
CMD ["serve"]
