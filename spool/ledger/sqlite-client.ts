// knex's better-sqlite3 client prepares every statement again on every query (a profile of the
// cycle showed `prepare` as a tenth of the ledger's CPU). This one keeps each connection's
// prepared statements by SQL text; better-sqlite3 re-prepares a statement itself after a schema
// change, and knex's streams (the one caller of iterate(), which would make a statement busy)
// prepare their own.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ClientBetterSqlite3 = require('knex/lib/dialects/better-sqlite3/index.js') as new (config: unknown) => object;

interface Statement {
  reader: boolean;
  safeIntegers(on: boolean): Statement;
  all(params: unknown[]): unknown;
  run(params: unknown[]): { lastInsertRowid: number | bigint; changes: number };
}
interface Connection {
  prepare(sql: string): Statement;
}
interface QueryObject {
  sql?: string;
  bindings?: unknown[];
  options?: unknown;
  response?: unknown;
  context?: unknown;
}
interface Base {
  _optSafeIntegers(options: unknown): boolean | undefined;
  _formatBindings(bindings: unknown[] | undefined): unknown[];
}

/** Enough for every statement the handlers issue; past it the cache starts again (ad-hoc SQL, a long-running CLI). */
const MAX_STATEMENTS = 1000;
const caches = new WeakMap<Connection, Map<string, Statement>>();

export class CachingBetterSqlite3Client extends ClientBetterSqlite3 {
  async _query(connection: Connection, obj: QueryObject): Promise<QueryObject> {
    if (!obj.sql) throw new Error('The query is empty');
    if (!connection) throw new Error('No connection provided');
    const self = this as unknown as Base;
    const safeIntegers = self._optSafeIntegers(obj.options);
    let cache = caches.get(connection);
    if (!cache) caches.set(connection, (cache = new Map()));
    const key = `${safeIntegers}:${obj.sql}`; // a statement set to safe integers stays so: one per setting
    let statement = cache.get(key);
    if (!statement) {
      if (cache.size >= MAX_STATEMENTS) cache.clear();
      statement = connection.prepare(obj.sql);
      if (safeIntegers !== undefined) statement.safeIntegers(safeIntegers);
      cache.set(key, statement);
    }
    const bindings = self._formatBindings(obj.bindings);
    if (statement.reader) {
      obj.response = statement.all(bindings);
      return obj;
    }
    const response = statement.run(bindings);
    obj.response = response;
    obj.context = { lastID: response.lastInsertRowid, changes: response.changes };
    return obj;
  }
}
