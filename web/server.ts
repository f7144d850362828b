// The web listener: Fastify over HTTPS (plain HTTP only on loopback or when allowed), serving the
// merchant portal, the operator console, /metrics and /healthz. Sessions live in the ledger, so a
// restart keeps them; every page is rendered on the server.
import type { AddressInfo, Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { Centre } from '../jobs/centre.ts';
import type { Engine } from '../jobs/engine.ts';
import { portalUrl, type WebListenerSettings } from '../jobs/web-config.ts';
import type { ProtocolListener } from '../protocols/contract.ts';
import { AdmissionGate } from '../protocols/admission.ts';
import { readSecret } from '../protocols/secrets.ts';
import { makeAudit, notFound, sendPage, type NamedListener, type WebContext } from './context.ts';
import { html, label, STYLESHEET } from './html.ts';
import { createMetrics } from './metrics.ts';
import { healthReport } from './health.ts';
import { SessionStore } from './sessions.ts';
import { UsersRepository } from './users.ts';
import { authRoutes, requireRole, sessionHook } from './routes/auth.ts';
import { portalRoutes } from './routes/portal.ts';
import { jmanagerRoutes } from './routes/jmanager.ts';
import { opsRoutes } from './routes/ops.ts';

export interface WebServerOptions {
  centre: Centre;
  engine: Engine;
  settings: WebListenerSettings;
  /** The centre's other listeners, for health and metrics. */
  listeners?: () => NamedListener[];
  maxUploadBytes?: number;
}

export interface WebServer extends ProtocolListener {
  readonly url: string;
  readonly app: FastifyInstance | undefined;
}

const CSP = "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export async function buildWebApp(o: WebServerOptions, self: () => NamedListener): Promise<FastifyInstance> {
  const { centre, engine, settings } = o;
  const tls = settings.tls ? { key: readSecret(settings.tls.key, 'web listener TLS key'), cert: readSecret(settings.tls.cert, 'web listener certificate'), minVersion: 'TLSv1.2' as const } : undefined;
  const limits = { logger: false, bodyLimit: 1024 * 1024, connectionTimeout: settings.idleTimeoutSeconds * 1000 } as const;
  const app = (tls ? Fastify({ ...limits, https: tls, trustProxy: false }) : Fastify(limits)) as unknown as FastifyInstance;
  const partial: Omit<WebContext, 'audit'> = {
    centre,
    engine,
    settings,
    users: new UsersRepository(centre.ledger),
    sessions: new SessionStore(centre.ledger, settings.sessionMinutes * 60_000),
    listeners: () => [self(), ...(o.listeners?.() ?? [])],
    secure: Boolean(tls) || settings.allowPlainHttp, // allowPlainHttp means TLS ends in front of us
    now: () => engine.ctx.now(),
  };
  const web: WebContext = { ...partial, audit: makeAudit(centre) };
  const metrics = createMetrics(partial);

  await app.register(cookie);
  await app.register(formbody);
  await app.register(multipart, { limits: { fileSize: o.maxUploadBytes ?? 512 * 1024 * 1024, files: 1, fields: 10, fieldSize: 1024 } });

  app.addHook('onRequest', sessionHook(web));
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    if (!req.url.startsWith('/ops/queues')) {
      reply.header('content-security-policy', CSP);
      reply.header('x-frame-options', 'DENY');
    }
    if (tls) reply.header('strict-transport-security', 'max-age=31536000');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', req.url.startsWith('/static/') ? 'max-age=3600' : 'no-store');
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpDuration.observe({ route: req.routeOptions.url ?? 'unknown', method: req.method, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.setNotFoundHandler((req, reply) => notFound(req, reply));
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) centre.log.error({ err, url: req.url.split('?')[0] }, 'web request failed');
    return sendPage(req, reply, 'エラー (Error)', html`<p class="error">${status === 500 ? label('処理できませんでした', 'Something went wrong') : err.message}</p>`, status);
  });

  app.get('/static/app.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(STYLESHEET));
  app.get('/healthz', async (_req, reply) => {
    const h = await healthReport(web);
    return reply.code(h.ok ? 200 : 503).send({ ok: h.ok, checks: h.checks, listeners: h.listeners, queue: h.queue });
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  authRoutes(app, web);
  portalRoutes(app, web);
  jmanagerRoutes(app, web);
  opsRoutes(app, web);

  if (engine.bullQueues?.length) {
    const { createBullBoard } = await import('@bull-board/api');
    const { BullMQAdapter } = await import('@bull-board/api/bullMQAdapter');
    const { FastifyAdapter } = await import('@bull-board/fastify');
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath('/ops/queues');
    createBullBoard({ queues: engine.bullQueues.map((q) => new BullMQAdapter(q as never)), serverAdapter: serverAdapter as never });
    await app.register(async (scope) => {
      scope.addHook('onRequest', requireRole('operator'));
      await scope.register(serverAdapter.registerPlugin() as never, { prefix: '/ops/queues' });
    });
  }
  return app;
}

export function createWebServer(o: WebServerOptions): WebServer {
  let app: FastifyInstance | undefined;
  let boundPort = 0;
  const open = new Set<unknown>();
  const server: WebServer = {
    get port() {
      return boundPort;
    },
    get url() {
      return portalUrl(o.settings, boundPort);
    },
    get app() {
      return app;
    },
    connections: () => open.size,
    async start() {
      app = await buildWebApp(o, () => ({ name: 'web', listener: server }));
      // The admission gate on the TCP accept (before TLS): a connection that has not sent a whole
      // request within the login grace time, or one over the caps, is closed (slow-request floods).
      const tickets = new AdmissionGate(o.settings, o.centre.log, 'web').guard(app.server);
      app.addHook('onRequest', async (req) => {
        const socket = req.raw.socket as Socket & { _parent?: Socket };
        (tickets.get(socket) ?? (socket._parent && tickets.get(socket._parent)))?.loggedIn();
      });
      app.server.on('connection', (socket) => {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
      });
      await app.listen({ host: o.settings.host, port: o.settings.port });
      boundPort = (app.server.address() as AddressInfo).port;
      o.centre.log.info({ url: server.url }, 'web portal listening');
    },
    async stop() {
      if (!app) return;
      const closing = app.close();
      // Keep-alive browsers would hold the close open.
      app.server.closeAllConnections?.();
      await closing;
      app = undefined;
    },
  };
  return server;
}
