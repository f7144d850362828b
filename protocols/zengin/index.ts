// 全銀TCP/IP (../shared/specs/zengin-tcpip.md): primary (client) and secondary (listener).
export { zenginEndpointSchema, zenginListenerSchema, zenginAccountSchema, defaultRecordLength } from './config.ts';
export type { ZenginEndpoint, ZenginEndpointInput, ZenginListenerSettings, ZenginListenerInput, ZenginAccount, ZenginAccountInput } from './config.ts';
export { ZenginClient, isBrokenConnection, type SendItem, type ReceiveItem } from './client.ts';
export { PrimarySession, ZenginError, type ZenginTransferResult } from './primary.ts';
export { createZenginListener, type ZenginListener } from './listener.ts';
export { Result, SessionKind, FileKind } from './messages.ts';
