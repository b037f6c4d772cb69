# pipeops-tunnel — one image for the agent (`connect`, the default), the
# gateway (`gateway`) and the runner-side proxy (`proxy`), e.g. as a sidecar.
#
#   docker build -t pipeops-tunnel .
#   docker run --rm -e PIPEOPS_PIPEOPS_API_URL=https://gateway.example \
#     -e PIPEOPS_PIPEOPS_TOKEN=… -e PIPEOPS_AGENT_CLUSTER_NAME=my-cluster pipeops-tunnel
#
# The sources are TypeScript run natively by Node 24 (type stripping). Node
# does not strip types under node_modules, so the workspace layout is kept:
# workspace packages stay in packages/ and are linked, not copied.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN npm install -g --no-fund --no-audit pnpm@10.34.9
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY packages/ packages/
# Only the command and its workspace dependencies, production dependencies only
# (the root's `node` devDependency is not needed: the image has Node 24).
RUN pnpm install --frozen-lockfile --prod --ignore-scripts --filter "pipeops-tunnel..." \
 && rm -rf packages/*/test

FROM node:24-bookworm-slim
# jemalloc instead of glibc's malloc, returning freed pages after about a
# second: after a burst of 200 concurrent 1 MiB responses glibc kept the
# agent's RSS 66–105 MB over its baseline a minute later (fds and heap long
# back), jemalloc 8–22 MB (docs/reliability.md, "Memory").
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libjemalloc2 \
 && ln -s "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" /usr/local/lib/libjemalloc.so.2 \
 && rm -rf /var/lib/apt/lists/*
# The compile cache, filled below, lets every start skip the TypeScript
# stripper (~30 MB less RSS for an idle agent; see bin/pipeops-tunnel.js).
ENV NODE_ENV=production NODE_COMPILE_CACHE=/app/.node-compile-cache \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
RUN cd /app/packages/cli && node --input-type=module -e \
  "for (const m of ['./src/main.ts', './src/commands/connect.ts', './src/commands/gateway.ts', './src/commands/proxy.ts', '@pipeops/tunnel-agent', '@pipeops/tunnel-gateway', '@pipeops/tunnel-client']) await import(m)"
EXPOSE 8080
ENTRYPOINT ["node", "/app/packages/cli/bin/pipeops-tunnel.js"]
CMD ["connect"]
