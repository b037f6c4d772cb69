# pipeops-tunnel — one image for the agent (`connect`, the default), the
# gateway (`gateway`) and the runner-side proxy (`proxy`), e.g. as a sidecar.
#
#   docker build -t pipeops-tunnel .
#   docker run --rm -e PIPEOPS_PIPEOPS_API_URL=https://gateway.example \
#     -e PIPEOPS_PIPEOPS_TOKEN=… -e PIPEOPS_AGENT_CLUSTER_NAME=my-cluster pipeops-tunnel
#
# The `pipeops-tunnel` package from the tarball `pnpm pack:all` writes (the
# package users get), without its npm dependencies: the command runs from its
# bundle (tools/bundle.ts), which carries them at the lockfile's versions.
# The same steps as the image `pnpm image` builds and tests without Docker.
FROM node:24-bookworm-slim AS build
WORKDIR /src
RUN npm install -g --no-fund --no-audit pnpm@10.34.9
COPY . .
# The whole workspace: packing needs its dev tools (TypeScript, esbuild). No
# install scripts: the image's Node is the one that runs them.
RUN pnpm install --frozen-lockfile --ignore-scripts \
 && node tools/pack.ts --out /packages > /packages.txt \
 && mkdir -p /app/node_modules/pipeops-tunnel \
 && tar -xzf "$(awk '$1 == "cli" { print $2 }' /packages.txt)" --strip-components=1 -C /app/node_modules/pipeops-tunnel

FROM node:24-bookworm-slim
# jemalloc instead of glibc's malloc, returning freed pages after about a
# second: after a burst of 200 concurrent 1 MiB responses glibc kept the
# agent's RSS 66–105 MB over its baseline a minute later (fds and heap long
# back), jemalloc 8–22 MB (docs/reliability.md, "Memory").
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libjemalloc2 \
 && ln -s "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" /usr/local/lib/libjemalloc.so.2 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production NODE_COMPILE_CACHE=/tmp/node-compile-cache \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
EXPOSE 8080
ENTRYPOINT ["node", "/app/node_modules/pipeops-tunnel/bin/pipeops-tunnel-published.js"]
CMD ["connect"]
