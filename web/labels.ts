// Japanese names of file types and states (English beside them on the pages), and time formatting.
export const TYPE_LABELS: Record<string, string> = {
  '31': '売上 (sales)',
  '32': '売上 カード会社向け (sales to card company)',
  '33': '売上結果 (sales result)',
  '41': '有効性チェック (validity check)',
  '42': '有効性チェック結果 (validity result)',
  '51': '無効カード 定例 (invalid cards)',
  '52': '無効カード 緊急 (emergency invalid cards)',
  '61': 'ギフト (gift)',
  '71': 'Jmanager集計 (aggregates)',
  '81': '端末取引 (terminal transactions)',
  '91': '返却通知 (rejection notice)',
};

export const STATE_LABELS: Record<string, string> = {
  received: '受信 received',
  accepted: '受付 accepted',
  rejected: '不受理 rejected',
  routed: '振分済 routed',
  ready: '準備完了 ready',
  sending: '送信中 sending',
  sent: '送信済 sent',
  acknowledged: '結果受領 acknowledged',
  failed: '配信失敗 failed',
};

const TOKYO = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });

export function formatTime(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '' : TOKYO.format(new Date(Number(ms)));
}
