# factorwatch in a small, non-root image.
#   docker build -t factorwatch .
#   docker run -v $PWD/factorwatch.toml:/etc/factorwatch/factorwatch.toml:ro -v fw-data:/var/lib/factorwatch \
#     -e OKTA_API_TOKEN=… factorwatch
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p factorwatch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/factorwatch /usr/local/bin/factorwatch
WORKDIR /var/lib/factorwatch
USER nonroot
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/factorwatch"]
CMD ["run", "--config", "/etc/factorwatch/factorwatch.toml"]
