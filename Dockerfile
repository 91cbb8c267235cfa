# syntax=docker/dockerfile:1
# RamPay's images (docs/deploy.md): the server (the default, last stage) and the worker (--target worker).
#
#   docker build -t rampay-server .
#   docker build -t rampay-worker --target worker .
#
# The base images are build arguments, so that a machine without a registry builds on local stand-ins
# (scripts/container-images.sh; podman build --format docker --pull=never --build-arg SDK_IMAGE=... RUNTIME_IMAGE=...).
# The final stages install nothing: Microsoft's aspnet image is Ubuntu 24.04 and holds no curl, so the health check is
# the server's own --health-check mode.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

# ---- build: restore and publish (framework-dependent, Release, no apphost: the runtime image runs "dotnet x.dll")
FROM ${SDK_IMAGE} AS build
# For the target's architecture only (BuildKit and Buildah set TARGETARCH): the native libraries of other platforms
# (librdkafka for Windows, macOS, ARM...) stay out of the image, about 70 MB.
ARG TARGETARCH
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/ src/
# The NuGet cache survives between builds (a BuildKit/Buildah cache mount), so a rebuild after a source change does
# not download the packages again.
RUN --mount=type=cache,id=rampay-nuget,target=/root/.nuget/packages \
    rid="linux-$([ "$TARGETARCH" = arm64 ] && echo arm64 || echo x64)" \
 && dotnet publish src/RamPay.Server/RamPay.Server.csproj -c Release -r "$rid" --self-contained false -o /out/server \
      --nologo --disable-build-servers -p:UseAppHost=false

# ---- the worker's publish (src/RamPay.Worker, rampay-worker): only built for --target worker
FROM build AS build-worker
RUN --mount=type=cache,id=rampay-nuget,target=/root/.nuget/packages \
    rid="linux-$([ "$TARGETARCH" = arm64 ] && echo arm64 || echo x64)" \
 && dotnet publish src/RamPay.Worker/RamPay.Worker.csproj -c Release -r "$rid" --self-contained false -o /out/worker \
      --nologo --disable-build-servers -p:UseAppHost=false

# ---- worker: rampay-worker notifications|analytics|rewards (the role is the command)
FROM ${RUNTIME_IMAGE} AS worker
WORKDIR /app
COPY --from=build-worker /out/worker/ /app/
# A role's own state (the analytics rollups) lives in this volume; made here so that a fresh named volume takes the
# non-root user's ownership.
RUN mkdir -p /var/lib/rampay-worker && chown 1654:1654 /var/lib/rampay-worker
VOLUME /var/lib/rampay-worker
ENV DOTNET_gcServer=0 \
    ASPNETCORE_HTTP_PORTS=
USER 1654
EXPOSE 8080
# The worker's own health-check mode (the aspnet image has no curl): /health/live on the port every role is given in
# compose.yaml and deploy/k8s (--http-port 8080).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["dotnet", "/app/rampay-worker.dll", "--health-check", "http://127.0.0.1:8080/health/live"]
ENTRYPOINT ["dotnet", "/app/rampay-worker.dll"]
CMD ["--help"]

# ---- server: rampay-server (the default target)
FROM ${RUNTIME_IMAGE} AS server
WORKDIR /app
COPY --from=build /out/server/ /app/
# The journal, snapshots, archive and key files live in the volume. Created here so that a fresh named volume takes
# this directory's owner (the non-root user 1654, "app" in Microsoft's images) and the server can write to it.
RUN mkdir -p /var/lib/rampay && chown 1654:1654 /var/lib/rampay
VOLUME /var/lib/rampay
# Inside a container the server listens on every interface (outside, RamPay's default is loopback only).
# ASPNETCORE_HTTP_PORTS is cleared: Kestrel listens where RamPay:Http says, not also where the base image says.
ENV RAMPAY_DATADIRECTORY=/var/lib/rampay \
    RAMPAY_HTTP__HOST=0.0.0.0 \
    RAMPAY_HTTP__PORT=8080 \
    RAMPAY_TCP__HOST=0.0.0.0 \
    RAMPAY_TCP__PORT=7070 \
    RAMPAY_LOGGING__FORMAT=json \
    ASPNETCORE_HTTP_PORTS=
USER 1654
EXPOSE 8080 7070
# /health/live answers once Kestrel listens, before the journal replay ends (readiness is /health/ready): a long replay
# does not make the container unhealthy. The check is the server binary itself (no curl in the image).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["dotnet", "/app/rampay-server.dll", "--health-check", "http://127.0.0.1:8080/health/live"]
# SIGTERM drains the engine, writes the final snapshot, lets the sinks catch up (at most RamPay:Sinks:DrainTimeoutMs)
# and releases the writer lease; the host allows its stop 30 s. Grant at least 60 s (docker stop -t 60,
# stop_grace_period in compose.yaml, terminationGracePeriodSeconds in deploy/k8s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "/app/rampay-server.dll"]
