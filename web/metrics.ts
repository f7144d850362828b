// /metrics in the Prometheus text format (prom-client). Ledger figures are read at scrape time, so
// every process (serve, workers on other machines) is counted, not only this one.
import client from 'prom-client';
import type { WebContext } from './context.ts';

export interface WebMetrics {
  registry: client.Registry;
  httpDuration: client.Histogram<'route' | 'method' | 'status'>;
}

const num = (v: unknown) => Number(v ?? 0);

export function createMetrics(web: Omit<WebContext, 'audit'>): WebMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'tsunagi_process_' });
  const db = () => web.centre.ledger.db;

  new client.Gauge({
    name: 'tsunagi_files',
    help: 'Files in the ledger by partner, direction (in/out) and file type',
    labelNames: ['partner', 'direction', 'file_type'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db()('files').select('partner_id', 'direction', 'file_type').count({ n: '*' }).groupBy('partner_id', 'direction', 'file_type');
      for (const r of rows as Record<string, unknown>[]) this.set({ partner: String(r.partner_id), direction: String(r.direction), file_type: String(r.file_type ?? 'unknown') }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_records',
    help: 'Records in the ledger files by partner, direction and file type',
    labelNames: ['partner', 'direction', 'file_type'],
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db()('files').select('partner_id', 'direction', 'file_type').sum({ n: 'record_count' }).groupBy('partner_id', 'direction', 'file_type');
      for (const r of rows as Record<string, unknown>[]) this.set({ partner: String(r.partner_id), direction: String(r.direction), file_type: String(r.file_type ?? 'unknown') }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_files_by_state',
    help: 'Files in the ledger by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await db()('files').select('state').count({ n: '*' }).groupBy('state')) as Record<string, unknown>[]) this.set({ state: String(r.state) }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_rejections',
    help: 'Validation errors found in inbound files, by error code',
    labelNames: ['code'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await db()('file_errors').select('code').sum({ n: 'count' }).groupBy('code')) as Record<string, unknown>[]) this.set({ code: String(r.code) }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_delivery_attempts',
    help: 'Delivery attempts by protocol and outcome (ok, error, picked_up, or running)',
    labelNames: ['protocol', 'outcome'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await db()('deliveries').select('protocol', 'outcome').count({ n: '*' }).groupBy('protocol', 'outcome')) as Record<string, unknown>[])
        this.set({ protocol: String(r.protocol), outcome: String(r.outcome ?? 'running') }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_delivery_failures',
    help: 'Failed delivery attempts by protocol',
    labelNames: ['protocol'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await db()('deliveries').where('outcome', 'error').select('protocol').count({ n: '*' }).groupBy('protocol')) as Record<string, unknown>[]) this.set({ protocol: String(r.protocol) }, num(r.n));
    },
  });
  new client.Gauge({
    name: 'tsunagi_cycle_duration_seconds',
    help: 'Inbound files that finished in the last 24 hours: seconds from arrival to routed or rejected (stat: avg, max)',
    labelNames: ['stat'],
    registers: [registry],
    async collect() {
      this.reset();
      const since = Date.now() - 86_400_000;
      const finished = db()('transitions').whereIn('to_state', ['routed', 'rejected']).where('at', '>=', since).select('file_id', 'at');
      const rows = (await db()
        .from(finished.as('f'))
        .join('files', 'files.id', 'f.file_id')
        .select(db().raw('avg(f.at - files.created_at) as avg_ms'), db().raw('max(f.at - files.created_at) as max_ms'))) as Record<string, unknown>[];
      this.set({ stat: 'avg' }, num(rows[0]?.avg_ms) / 1000);
      this.set({ stat: 'max' }, num(rows[0]?.max_ms) / 1000);
    },
  });
  new client.Gauge({
    name: 'tsunagi_queue_jobs',
    help: 'Jobs in the queue by state (waiting, delayed, active, ...)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [state, n] of Object.entries(await web.engine.queueDepth())) this.set({ state }, n);
    },
  });
  new client.Gauge({
    name: 'tsunagi_listener_connections',
    help: 'Connections open now on each listener',
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { name, listener } of web.listeners()) if (listener.connections) this.set({ listener: name }, listener.connections());
    },
  });
  new client.Gauge({
    name: 'tsunagi_logins',
    help: 'Logins on every listener from the audit table, by protocol and event (login_ok, login_refused)',
    labelNames: ['protocol', 'event'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await db()('audit').whereIn('event', ['login_ok', 'login_refused']).select('protocol', 'event').count({ n: '*' }).groupBy('protocol', 'event')) as Record<string, unknown>[])
        this.set({ protocol: String(r.protocol), event: String(r.event) }, num(r.n));
    },
  });
  const httpDuration = new client.Histogram({
    name: 'tsunagi_http_request_duration_seconds',
    help: 'Web requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [registry],
  });
  return { registry, httpDuration };
}
