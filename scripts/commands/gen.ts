// `tsunagi gen TYPE`: realistic test files, optionally with known planted errors.
import { EXIT_OK, UsageError, parseCommandArgs, type Command } from '../cli-kit.ts';
import { ENCODINGS, FRAMINGS } from '../../formats/layouts.ts';
import { KNOWN_FILE_TYPES, generateFile, type Encoding, type Framing } from '../../formats/index.ts';
import { checkChoice, checkLayoutName } from './validate.ts';
import { writeWhole } from '../lib/whole-output.ts';

/** m-tokyo in the starter config. */
export const GEN_DEFAULT_SENDER = '1000000001';
export const GEN_DEFAULT_MERCHANT = '100000000000001';

const usage = 'tsunagi gen TYPE --records N [--seed S] [--errors] --out FILE [--layout NAME] [--encoding E] [--framing F] [--merchant NO[,NO]] [--sender CODE] [--companies 001,002] [--file-seq N]';

export const command: Command = {
  summary: 'generate a realistic file of a type (31, 41, 61, ...), optionally with planted errors',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      records: { type: 'string' }, seed: { type: 'string' }, errors: { type: 'boolean' }, out: { type: 'string' },
      layout: { type: 'string' }, encoding: { type: 'string' }, framing: { type: 'string' },
      merchant: { type: 'string' }, sender: { type: 'string' }, companies: { type: 'string' }, 'file-seq': { type: 'string' },
    }, usage);
    const type = positionals[0];
    if (positionals.length !== 1 || !type || !KNOWN_FILE_TYPES.includes(type)) throw new UsageError(`TYPE must be one of ${KNOWN_FILE_TYPES.join(', ')}\nusage: ${usage}`);
    if (!values.out) throw new UsageError(`--out is required\nusage: ${usage}`);
    const records = Number(values.records);
    if (!values.records || !Number.isInteger(records) || records < 0) throw new UsageError(`--records must be a whole number\nusage: ${usage}`);
    const seed = values.seed === undefined ? 1 : Number(values.seed);
    if (!Number.isInteger(seed)) throw new UsageError('--seed must be an integer');
    // Each upload of a sender needs its own fileSeq: the same one twice is a duplicate (E108).
    const fileSeq = values['file-seq'] === undefined ? undefined : Number(values['file-seq']);
    if (fileSeq !== undefined && !(/^\d{1,6}$/.test(values['file-seq']!) && fileSeq >= 1)) throw new UsageError(`--file-seq must be 1 to 999999\nusage: ${usage}`);
    let result;
    try {
      result = await writeWhole(values.out, (temp) => generateFile(type, {
        records, seed, errors: values.errors ?? false, out: temp, fileSeq,
        layout: checkLayoutName(values.layout, '--layout'),
        encoding: checkChoice<Encoding>(values.encoding, ENCODINGS, '--encoding'),
        framing: checkChoice<Framing>(values.framing, FRAMINGS, '--framing'),
        // Defaults that the starter config (`tsunagi init`) knows: m-tokyo's code and merchant
        // number, and the card companies and gift issuer it routes to, so a first upload goes through.
        merchantNo: (values.merchant ?? GEN_DEFAULT_MERCHANT).split(','), senderCode: values.sender ?? GEN_DEFAULT_SENDER,
        cardCompanyCodes: (values.companies ?? '001,002,003').split(','), issuerCodes: (values.companies ?? '901').split(','),
      }));
    } catch (err) {
      if (err instanceof Error && /layout|fileType/.test(err.message)) throw new UsageError(err.message);
      throw err;
    }
    process.stdout.write(`wrote ${values.out}: fileType ${type}, ${result.family}, ${records} data records, ${result.planted.length} planted errors\n`);
    for (const p of result.planted) process.stdout.write(JSON.stringify(p) + '\n');
    return EXIT_OK;
  },
};
