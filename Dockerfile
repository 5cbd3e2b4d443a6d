# syntax=docker/dockerfile:1
# blindrelay: build with the pinned Rust toolchain, run from a minimal image as non-root.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the manifests or Cargo.lock
# change. Cargo loads every member of the workspace, so the load tools' manifest comes
# too, with a stub library: only the server is built.
COPY Cargo.toml Cargo.lock ./
COPY bench/load/Cargo.toml bench/load/
# A dependency patched in the workspace (Cargo.toml's [patch] section).
COPY patches ./patches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && mkdir -p benches && cp src/main.rs benches/hot.rs \
 && touch src/lib.rs \
 && mkdir -p bench/load/src && touch bench/load/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# Make the real sources newer than the placeholder build.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked
# The runtime's data folder (DATA_DIR), copied below with its owner: distroless has no shell.
RUN mkdir /data

# distroless/cc: glibc, CA certificates, a nonroot user; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/blindrelay /app/blindrelay
COPY static /app/static
# Rooms survive a restart of the container in the snapshot under /data (mount a volume
# there to keep them across a new container too); owned by the nonroot user.
COPY --from=build --chown=65532:65532 /data /data
VOLUME /data
ENV HOST=0.0.0.0 \
    PORT=3001 \
    STATIC_DIR=/app/static \
    DATA_DIR=/data
# 65532 is distroless's "nonroot" user.
USER 65532:65532
EXPOSE 3001
# The binary probes its own /health: the image has no curl or shell.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/app/blindrelay", "healthcheck"]
ENTRYPOINT ["/app/blindrelay"]
CMD ["serve"]
