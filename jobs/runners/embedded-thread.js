// Worker-thread entry of the embedded runner's pool. Plain JS so that it can register tsx first.
import { register } from 'tsx/esm/api';
register();
await import('./embedded-thread-processor.ts');
