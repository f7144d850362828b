// Placeholder: filled by the Jmanager and reconciliation work (issue 5).
import { UsageError, type Command } from '../cli-kit.ts';

export const command: Command = {
  summary: 'reconcile (not yet available)',
  usage: 'tsunagi reconcile ...',
  async run() {
    throw new UsageError('reconcile is not available yet');
  },
};
