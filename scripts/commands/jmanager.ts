// Placeholder: filled by the Jmanager and reconciliation work (issue 5).
import { UsageError, type Command } from '../cli-kit.ts';

export const command: Command = {
  summary: 'jmanager (not yet available)',
  usage: 'tsunagi jmanager ...',
  async run() {
    throw new UsageError('jmanager is not available yet');
  },
};
