# Builds the one binary, metal-automata, and runs it as an unprivileged user.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        cmake pkg-config libssl-dev libcurl4-openssl-dev libsasl2-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin metal-automata \
    && cp target/release/metal-automata /usr/local/bin/metal-automata

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates libssl3 libcurl4 libsasl2-2 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/metal-automata --create-home metal-automata
COPY --from=build /usr/local/bin/metal-automata /usr/local/bin/metal-automata
USER metal-automata
ENV METAL_AUTOMATA_DATA_DIR=/var/lib/metal-automata
VOLUME /var/lib/metal-automata
EXPOSE 7878
ENTRYPOINT ["metal-automata"]
CMD ["serve"]
