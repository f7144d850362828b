// Who gets what: the routing tables derived from the config.
import type { PartnerConfig, TsunagiConfig } from './config.ts';

export interface RouteTable {
  /** card-company or issuer code -> card-company partner */
  companyByCode: Map<string, PartnerConfig>;
  /** merchant number -> merchant partner */
  merchantByNo: Map<string, PartnerConfig>;
  /** card-company code -> merchants dealing with it (51/52 fan-out) */
  merchantsByCompanyCode: Map<string, PartnerConfig[]>;
  byId: Map<string, PartnerConfig>;
}

export function buildRouteTable(config: TsunagiConfig): RouteTable {
  const companyByCode = new Map<string, PartnerConfig>();
  const merchantByNo = new Map<string, PartnerConfig>();
  const merchantsByCompanyCode = new Map<string, PartnerConfig[]>();
  for (const p of config.partners) {
    for (const code of p.cardCompanyCodes) companyByCode.set(code, p);
    if (p.role === 'merchant') for (const no of p.merchantNos) merchantByNo.set(no, p);
  }
  for (const p of config.partners) {
    if (p.role !== 'merchant') continue;
    for (const code of p.dealsWith ?? companyByCode.keys()) {
      const list = merchantsByCompanyCode.get(code) ?? [];
      list.push(p);
      merchantsByCompanyCode.set(code, list);
    }
  }
  return { companyByCode, merchantByNo, merchantsByCompanyCode, byId: new Map(config.partners.map((p) => [p.id, p])) };
}

/** The file type a destination receives for what a source sent. */
export const FORWARDED_TYPE: Record<string, string> = {
  '31': '32',
  '33': '33',
  '41': '41',
  '42': '42',
  '51': '51',
  '52': '52',
  '61': '61',
};

export type RouteKind = 'by-company' | 'by-merchant' | 'fan-out' | 'terminal' | 'utility' | 'none';

/** How records of a file type are routed (spec: Routing). */
export function routeKindOf(fileType: string): RouteKind {
  switch (fileType) {
    case '31':
    case '41':
    case '61':
      return 'by-company';
    case '33':
    case '42':
      return 'by-merchant';
    case '51':
    case '52':
      return 'fan-out';
    case '81':
      return 'terminal';
    case '21':
    case '23':
      return 'utility';
    default:
      return 'none';
  }
}
