// Every job kind and its handler; both runners dispatch through this table.
import type { Handler, JobKind } from '../context.ts';
import { scan } from './scan.ts';
import { ingest } from './ingest.ts';
import { route } from './route.ts';
import { deliver, deliverScheduled } from './deliver.ts';
import { collect } from './collect.ts';
import { sweep } from './sweep.ts';
import { purge } from './purge.ts';
import { jmanager } from './jmanager.ts';
import { reconcile } from './reconcile.ts';
import { utilityValidity } from '../utility/validity.ts';

export const HANDLERS: Record<JobKind, Handler> = {
  scan,
  ingest,
  route,
  deliver,
  'deliver-scheduled': deliverScheduled,
  collect,
  sweep,
  purge,
  jmanager,
  reconcile,
  'utility-validity': utilityValidity,
};
