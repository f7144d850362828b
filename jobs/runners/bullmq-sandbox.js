// BullMQ sandboxed processor entry (a worker thread). Plain JS so that it can register tsx
// before loading the TypeScript handlers.
import { register } from 'tsx/esm/api';
register();
const { processJob } = await import('./bullmq-sandbox-processor.ts');
export default processJob;
