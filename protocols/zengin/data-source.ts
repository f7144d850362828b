// Reads a file as 全銀 data-message payloads: whole records, `perText` records a message, from
// message `fromSeq` on. Reads big blocks with one read ahead so the disk keeps up with the socket.
import type { ReadHandle } from '../../formats/file-access.ts';

const BLOCK_TARGET = 4 << 20;

export interface TextChunk {
  seq: number;
  payload: Buffer;
}

export async function* dataTexts(handle: Pick<ReadHandle, 'read'>, size: number, recordLength: number, perText: number, fromSeq = 1): AsyncGenerator<TextChunk> {
  const textBytes = perText * recordLength;
  const textsPerBlock = Math.max(1, Math.floor(BLOCK_TARGET / textBytes));
  const blockBytes = textsPerBlock * textBytes;
  let offset = (fromSeq - 1) * textBytes;
  let seq = fromSeq;
  const readAt = async (at: number) => {
    const len = Math.min(blockBytes, size - at);
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await handle.read(buf, got, len - got, at + got);
      if (bytesRead === 0) throw new Error(`file ended at ${at + got} of ${size} bytes while sending`);
      got += bytesRead;
    }
    return buf;
  };
  let next = offset < size ? readAt(offset) : null;
  while (next) {
    const block = await next;
    offset += block.length;
    next = offset < size ? readAt(offset) : null;
    next?.catch(() => undefined); // awaited on the next turn
    for (let at = 0; at < block.length; at += textBytes) {
      yield { seq: seq++, payload: block.subarray(at, Math.min(at + textBytes, block.length)) };
    }
  }
}
