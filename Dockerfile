# meshd: build the TypeScript, then ship only dist/ and the production dependencies.
# Build: docker build -t meshd:dev .
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY protos ./protos
RUN npx tsc -p tsconfig.json

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# meshd's own .proto files (Istio's CA API), loaded at run time from /app/protos.
COPY protos ./protos
COPY package.json ./
COPY examples ./examples
# The install profiles `meshd install` renders (found beside dist/, at /app/manifests).
COPY manifests ./manifests
USER 1337:1337
EXPOSE 15010 15012 15014 15017
ENTRYPOINT ["node", "/app/dist/src/cli/main.js", "serve"]
