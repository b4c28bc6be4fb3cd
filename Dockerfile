# feedwatch daemon image: config and database live on mounted volumes, the process runs as non-root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY storage ./storage
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/feedwatch --create-home feedwatch \
 && mkdir -p /etc/feedwatch /var/lib/feedwatch \
 && chown feedwatch:feedwatch /var/lib/feedwatch
COPY --from=build /install /usr/local
COPY config/feedwatch.yaml /etc/feedwatch/feedwatch.yaml
# The database goes to /var/lib/feedwatch/feedwatch.db unless the config sets storage.url.
ENV FEEDWATCH_CONFIG=/etc/feedwatch/feedwatch.yaml \
    FEEDWATCH_DATA_DIR=/var/lib/feedwatch \
    FEEDWATCH_CACHE_DIR=/usr/local/share/feedwatch \
    PYTHONUNBUFFERED=1
# the gazetteer and Unicode tables, built once here rather than at every container's first start
RUN python -c "from monitor.match.gazetteer import gazetteer_path; from monitor.match.normalize import tables; gazetteer_path(); tables()"
USER feedwatch
WORKDIR /var/lib/feedwatch
VOLUME ["/var/lib/feedwatch"]
EXPOSE 9308
# /healthz answers 200 while the event loop runs and storage answers (needs the config's
# `server:` block, as in the bundled config).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9308/healthz', timeout=4).status != 200)"]
# SIGTERM finishes in-flight work and exits 0 within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["feedwatch"]
CMD ["run"]
