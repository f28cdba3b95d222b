# serialtwin in a container: the CLI, serving deploy/fleet.toml's devices over the network.
# See docs/deploy.md (deploy/compose.yaml, deploy/kubernetes/statefulset.yaml).
#
#   docker build -t serialtwin .
#   docker run --rm -p 7000:7000 -p 7100:7100 serialtwin
#
# Stage 1: the release binary, built from the locked dependencies.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p serialtwin-cli --locked \
    && install -m 0755 target/release/serialtwin /serialtwin

# Stage 2: the binary, the entrypoint and the example fleet on a slim Debian (the glibc the
# build linked against), run by a user of its own.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 serialtwin \
    && useradd --system --uid 10001 --gid serialtwin --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin serialtwin
COPY --from=build /serialtwin /usr/local/bin/serialtwin
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/serialtwin-entrypoint
COPY deploy/fleet.toml /etc/serialtwin/fleet.toml
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
# deploy/fleet.toml's endpoints (raw TCP 70xx, RFC 2217 71xx, Modbus TCP and RTU over TCP 50xx).
EXPOSE 7000 7001 7010 7020 7100 7101 7110 7120 7130 5020 5021 5030 5031
# SERIALTWIN_SHARD=K/N, or SERIALTWIN_SHARDS=N with K from the hostname's ordinal (see the script).
ENTRYPOINT ["/usr/local/bin/serialtwin-entrypoint"]
CMD ["/etc/serialtwin/fleet.toml"]
