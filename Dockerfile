# BucketSync service image: one binary, role chosen at start (`start -r unified|sync|api`).
# Build: docker build -t bucketsync .   Run: see docs/self-hosting.md
FROM node:20-bookworm-slim AS build
WORKDIR /app
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0 TURBO_TELEMETRY_DISABLED=1
RUN corepack enable
COPY . .
RUN pnpm install --frozen-lockfile \
 && pnpm exec turbo run build --filter @bucketsync/service... \
 && pnpm --filter @bucketsync/service deploy --prod /out

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /out /app
ENV NODE_ENV=production
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:8080/probes/liveness').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "/app/bin/bucketsync"]
CMD ["start", "-c", "/config/config.yaml"]
