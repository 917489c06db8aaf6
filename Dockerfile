# artifact-store server image: `docker build -t artifact-store .`
FROM python:3.12-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY oci oci
COPY storage storage
COPY registry registry
COPY conformance conformance
RUN uv build --wheel --out-dir /dist \
 && uv export --frozen --no-dev --no-emit-project --format requirements-txt > /dist/requirements.txt

FROM python:3.12-slim
COPY --from=build /dist /dist
RUN pip install --no-cache-dir -r /dist/requirements.txt /dist/*.whl && rm -rf /dist \
 && useradd --system --home /var/lib/artifact-store --create-home artifact-store
USER artifact-store
WORKDIR /var/lib/artifact-store
VOLUME /var/lib/artifact-store
EXPOSE 5000
ENV ARTIFACT_STORE_LISTEN=0.0.0.0:5000 \
    ARTIFACT_STORE_DATA_DIR=/var/lib/artifact-store
ENTRYPOINT ["artifact-store"]
CMD ["serve"]
