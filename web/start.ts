// What `tsunagi serve` (and the demo) start beside the protocol listeners: the web listener when
// `listeners.web` is configured, and the notice mailer when `mail` (the smarthost) is.
import type { Engine } from '../jobs/engine.ts';
import type { NamedProtocolListener } from '../jobs/listeners.ts';
import { portalUrl, type WebListenerSettings } from '../jobs/web-config.ts';
import { MailNotifier } from '../protocols/mail/notifier.ts';
import { createWebServer, type WebServer } from './server.ts';

export interface WebServices {
  web?: WebServer;
  notifier?: MailNotifier;
  stop(): Promise<void>;
}

export async function startWebServices(engine: Engine, listeners: NamedProtocolListener[], override?: { web?: WebListenerSettings }): Promise<WebServices> {
  const { centre } = engine.ctx;
  const { config } = centre;
  const settings = override?.web ?? config.listeners.web;
  let web: WebServer | undefined;
  if (settings) {
    web = createWebServer({ centre, engine, settings, listeners: () => listeners.map((l) => ({ name: l.name, listener: l })) });
    await web.start();
  }
  let notifier: MailNotifier | undefined;
  if (config.mail) {
    const targets = config.partners.filter((p) => p.notices).map((p) => ({ partnerId: p.id, partnerName: p.name, to: p.notices!.to, fileTypes: p.notices!.fileTypes }));
    notifier = new MailNotifier({ ledger: centre.ledger, settings: config.mail, targets, portalUrl: web?.url ?? (settings ? portalUrl(settings) : undefined), log: centre.log.child({ component: 'notices' }) });
    notifier.start();
  }
  return {
    web,
    notifier,
    async stop() {
      await web?.stop().catch((err) => centre.log.error({ err }, 'web stop failed'));
      await notifier?.stop().catch((err) => centre.log.error({ err }, 'notifier stop failed'));
    },
  };
}
