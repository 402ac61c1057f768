# The Flywheel worker image: `docker compose` runs it as `worker`; any `flywheel` command works as its arguments.
FROM node:20.18.1-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY bin ./bin
COPY app ./app
COPY temporal ./temporal
COPY lib ./lib
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY client ./client
RUN mkdir -p /var/lib/flywheel && chown node:node /var/lib/flywheel
USER node
ENTRYPOINT ["node", "bin/flywheel.js"]
CMD ["worker"]
