// Migrations run from code at start (no knex CLI). Append new ones; never edit a released one.
import type { Knex } from 'knex';
import { writeTransaction, type Ledger } from './db.ts';
import { isUniqueViolation } from './files.ts';
import { chainExistingAudit } from './audit.ts';

interface Migration {
  name: string;
  up(db: Knex): Promise<void>;
}

const migrations: Migration[] = [
  {
    name: '001_core',
    async up(db) {
      await db.schema.createTable('files', (t) => {
        t.string('id', 64).primary();
        t.string('partner_id', 64).notNullable();
        t.string('direction', 3).notNullable(); // 'in' | 'out'
        t.string('file_type', 2);
        t.string('name', 255).notNullable();
        t.string('path', 1024);
        t.bigInteger('size');
        t.string('sha256', 64);
        t.string('sender_code', 10);
        t.string('receiver_code', 10);
        t.string('file_seq', 6);
        t.string('business_date', 8);
        t.integer('record_count');
        t.integer('accepted_count');
        t.integer('rejected_count');
        t.bigInteger('amount_total');
        t.string('state', 16).notNullable();
        t.string('parent_id', 64).references('id').inTable('files');
        t.string('reason', 1000);
        t.integer('attempts').notNullable().defaultTo(0);
        // Inbound only, reserved when the file is claimed (so in claim order): the sequence number
        // that outbound fileSeqs derive from, and the first of the centreRefs its records may use.
        t.bigInteger('in_seq');
        t.bigInteger('centre_ref_start');
        t.bigInteger('archived_at');
        t.bigInteger('purged_at');
        t.bigInteger('next_attempt_at');
        t.bigInteger('created_at').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.index(['partner_id', 'direction', 'state']);
        t.index(['state', 'updated_at']);
        t.index(['sender_code', 'file_type', 'file_seq']);
        t.index(['sha256']);
        t.index(['parent_id']);
        t.index(['created_at']);
      });
      // E108 under concurrency: two workers accepting the same file collide here, not in a race.
      await db.raw(
        "create unique index files_accepted_seq on files (sender_code, file_type, file_seq) where direction = 'in' and state in ('accepted', 'routed')",
      );
      await db.raw("create unique index files_accepted_bytes on files (sha256) where direction = 'in' and state in ('accepted', 'routed')");
      await db.schema.createTable('transitions', (t) => {
        t.increments('id').primary();
        t.string('file_id', 64).notNullable().references('id').inTable('files');
        t.bigInteger('at').notNullable();
        t.string('from_state', 16);
        t.string('to_state', 16).notNullable();
        t.string('reason', 1000);
        t.string('actor', 128).notNullable();
        t.index(['file_id']);
      });
      await db.schema.createTable('deliveries', (t) => {
        t.increments('id').primary();
        t.string('file_id', 64).notNullable().references('id').inTable('files');
        t.integer('attempt').notNullable();
        t.string('protocol', 16).notNullable();
        t.string('remote_name', 255);
        t.bigInteger('started_at').notNullable();
        t.bigInteger('finished_at');
        t.string('outcome', 16); // ok | error | picked_up
        t.bigInteger('bytes');
        t.string('error', 1000);
        t.index(['file_id']);
      });
      await db.schema.createTable('audit', (t) => {
        t.increments('id').primary();
        t.bigInteger('at').notNullable();
        t.string('partner_id', 64);
        t.string('protocol', 16).notNullable();
        t.string('event', 32).notNullable(); // login_ok, login_refused, upload, download, refused, ...
        t.string('remote', 128);
        t.string('detail', 1000);
        t.index(['partner_id', 'at']);
      });
      await db.schema.createTable('sequences', (t) => {
        t.string('name', 128).primary();
        t.bigInteger('value').notNullable();
      });
      // Files fetched from partners that only offer pull, so that each is fetched once.
      await db.schema.createTable('collected', (t) => {
        t.string('partner_id', 64).notNullable();
        t.string('remote_name', 255).notNullable();
        t.bigInteger('size').notNullable();
        t.bigInteger('collected_at').notNullable();
        t.primary(['partner_id', 'remote_name', 'size']);
      });
      // What was forwarded to card companies, record by record: reconciliation's "sent" side.
      await db.schema.createTable('sent_records', (t) => {
        t.bigInteger('centre_ref').primary();
        t.string('file_id', 64).notNullable();
        t.string('source_file_id', 64).notNullable();
        t.string('card_company_code', 3).notNullable();
        t.string('merchant_no', 15).notNullable();
        t.string('terminal_id', 13);
        t.string('slip_no', 5);
        t.string('use_date', 8);
        t.string('txn_type', 2);
        t.bigInteger('amount');
        t.string('approval_no', 7);
        t.string('masked_card_no', 19);
        t.string('centre_date', 8).notNullable();
        t.string('result_code', 2);
        t.string('result_file_id', 64);
        t.integer('result_count').notNullable().defaultTo(0);
        t.index(['source_file_id']);
        t.index(['centre_date']);
        t.index(['merchant_no', 'terminal_id', 'slip_no', 'use_date']);
      });
    },
  },
  {
    // Jmanager and reconciliation (issue 5).
    name: '002_jmanager',
    async up(db) {
      // One row per 81 file loaded: the load and this row commit together, so a retry never counts twice.
      await db.schema.createTable('terminal_loads', (t) => {
        t.string('file_id', 64).primary();
        t.integer('record_count').notNullable();
        t.integer('aggregate_rows').notNullable();
        t.bigInteger('loaded_at').notNullable();
      });
      // Row per terminal transaction: reconciliation 2 matches single slips. Masked card numbers only.
      await db.schema.createTable('terminal_txns', (t) => {
        t.bigIncrements('id').primary();
        t.string('file_id', 64).notNullable();
        t.integer('record_no').notNullable();
        t.string('merchant_no', 15).notNullable();
        t.string('store_code', 10).notNullable();
        t.string('terminal_id', 13).notNullable();
        t.string('txn_date', 8).notNullable();
        t.string('slip_no', 5).notNullable();
        t.string('card_company_code', 3).notNullable();
        t.string('txn_type', 2).notNullable();
        t.bigInteger('amount').notNullable();
        t.string('approval_no', 7).notNullable();
        t.string('masked_card_no', 19).notNullable();
        t.index(['txn_date']);
      });
      // Pre-aggregated per 81 file (sums across files at read time): the 71 files and the 90-day
      // query read these, not the transactions.
      await db.schema.createTable('jm_aggregates', (t) => {
        t.bigIncrements('id').primary();
        t.string('file_id', 64).notNullable();
        t.string('merchant_no', 15).notNullable();
        t.string('store_code', 10).notNullable();
        t.string('terminal_id', 13).notNullable();
        t.string('business_date', 8).notNullable();
        t.string('card_company_code', 3).notNullable();
        t.string('payment_kind', 1).notNullable();
        t.string('payment_method', 2).notNullable();
        t.integer('sale_count').notNullable();
        t.bigInteger('sale_amount').notNullable();
        t.integer('void_count').notNullable();
        t.bigInteger('void_amount').notNullable();
        t.integer('return_count').notNullable();
        t.bigInteger('return_amount').notNullable();
        t.index(['merchant_no', 'business_date']); // the only index: each one costs load speed
      });
      // Reconciliation 1: the amount a card company returned, and results for nothing we sent.
      await db.schema.alterTable('sent_records', (t) => {
        t.bigInteger('result_amount');
        t.index(['use_date']); // reconciliation 2 reads one use date at a time
      });
      await db.schema.createTable('unmatched_results', (t) => {
        t.bigIncrements('id').primary();
        t.string('result_file_id', 64).notNullable();
        t.string('centre_ref', 12).notNullable();
        t.string('merchant_no', 15);
        t.string('terminal_id', 13);
        t.string('slip_no', 5);
        t.string('use_date', 8);
        t.bigInteger('amount');
        t.string('result_code', 2);
        t.string('masked_card_no', 19);
        t.string('received_date', 8).notNullable();
        t.unique(['result_file_id', 'centre_ref']);
        t.index(['received_date']);
      });
      // One summary per reconciled date; a rerun replaces it.
      await db.schema.createTable('reconcile_runs', (t) => {
        t.string('report_date', 8).primary();
        t.bigInteger('ran_at').notNullable();
        t.string('report_path', 1024).notNullable();
        t.integer('discrepancies').notNullable();
        t.string('counts', 2000).notNullable(); // JSON: category -> count
      });
    },
  },
  {
    // Web portal, mail channel and metrics (issue 16).
    name: '003_web_mail',
    async up(db) {
      // Portal users: a merchant's users carry its partner id; operators have none.
      await db.schema.createTable('web_users', (t) => {
        t.string('username', 64).primary();
        t.string('partner_id', 64);
        t.string('role', 16).notNullable(); // merchant | operator
        t.string('password_hash', 255).notNullable();
        t.string('totp_secret', 64);
        t.bigInteger('totp_last_step');
        t.boolean('disabled').notNullable().defaultTo(false);
        t.integer('failed_logins').notNullable().defaultTo(0);
        t.bigInteger('locked_until');
        t.bigInteger('last_login_at');
        t.bigInteger('created_at').notNullable();
        t.bigInteger('updated_at').notNullable();
      });
      // Sessions by the sha256 of their cookie: a leaked table gives no session away.
      await db.schema.createTable('web_sessions', (t) => {
        t.string('id', 64).primary();
        t.string('username', 64).notNullable();
        t.string('csrf', 64).notNullable();
        t.boolean('second_factor_ok').notNullable().defaultTo(false);
        t.bigInteger('created_at').notNullable();
        t.bigInteger('expires_at').notNullable();
        t.index(['username']);
      });
      // Uploads through the portal or the mail channel, so that the page can follow one into the ledger.
      await db.schema.createTable('web_uploads', (t) => {
        t.string('id', 32).primary();
        t.string('partner_id', 64).notNullable();
        t.string('username', 128).notNullable();
        t.string('channel', 8).notNullable(); // web | mail
        t.string('name', 255).notNullable();
        t.string('sha256', 64).notNullable();
        t.bigInteger('size').notNullable();
        t.bigInteger('uploaded_at').notNullable();
        t.text('detail'); // JSON: what the channel found before landing (CSV row errors)
        t.index(['partner_id', 'uploaded_at']);
        t.index(['sha256']);
      });
      // Notice mails sent, one per file and kind: a restart never mails twice.
      await db.schema.createTable('mail_notices', (t) => {
        t.string('file_id', 64).notNullable();
        t.string('kind', 16).notNullable();
        t.string('partner_id', 64).notNullable();
        t.bigInteger('sent_at');
        t.string('error', 1000);
        t.primary(['file_id', 'kind']);
      });
      // Validation errors by code per inbound file: the rejections-by-code metric.
      await db.schema.createTable('file_errors', (t) => {
        t.string('file_id', 64).notNullable();
        t.string('code', 8).notNullable();
        t.integer('count').notNullable();
        t.primary(['file_id', 'code']);
      });
    },
  },
  {
    // Exactly once as a partner sees it (issue 10): what a push recorded before each step, so that
    // a push cut off by a kill is finished rather than repeated, and who holds it.
    name: '003_delivery_journal',
    async up(db) {
      await db.schema.alterTable('deliveries', (t) => {
        t.string('phase', 16); // staging | committing (see protocols/staged-push.ts)
        t.string('temp_name', 255); // the temporary name at the partner
        t.string('holder', 128); // host:pid:start of the process pushing; null once released
        t.bigInteger('heartbeat_at'); // renewed while the push runs (holders on other hosts)
        t.string('note', 255); // how it ended: taken at once, finished after a kill, ...
      });
    },
  },
  {
    // AS2 (issue 13): messages we received (dedupe by sender and Message-ID, landing after the MDN,
    // async MDNs we owe) and messages we sent (MIC digests, pending MDNs, Message-ID reuse).
    name: '003_as2',
    async up(db) {
      await db.schema.createTable('as2_received', (t) => {
        t.string('partner_id', 64).notNullable();
        t.string('message_id', 300).notNullable();
        t.string('state', 16).notNullable(); // staged | answered | landed
        t.string('file_name', 255).notNullable();
        t.string('temp_path', 1024);
        t.string('final_path', 1024);
        t.bigInteger('size');
        t.string('mdn_state', 16).notNullable().defaultTo('none'); // none | pending | sent | failed
        t.string('mdn_url', 1000);
        t.text('mdn_headers'); // JSON [[name, value], ...]
        t.text('mdn_body'); // base64
        t.integer('mdn_attempts').notNullable().defaultTo(0);
        t.bigInteger('mdn_next_at');
        t.bigInteger('created_at').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.primary(['partner_id', 'message_id']);
        t.index(['state']);
        t.index(['mdn_state', 'mdn_next_at']);
      });
      await db.schema.createTable('as2_sent', (t) => {
        t.string('message_id', 300).primary();
        t.string('partner_id', 64).notNullable();
        t.string('remote_name', 255).notNullable();
        t.string('payload_sha256', 64).notNullable();
        t.string('state', 16).notNullable(); // sending | awaiting | processed | failed
        t.string('mdn_mode', 8).notNullable(); // none | sync | async
        t.string('mics', 1000).notNullable(); // JSON { sha1, sha256, sha384, sha512 } (base64)
        // Large uncompressed messages keep the MICs asked for; others are recomputed from these.
        t.text('mic_prefix'); // base64 of the bytes before the payload in the MIC basis
        t.string('payload_path', 1024);
        t.bigInteger('deadline_at');
        t.integer('sends').notNullable().defaultTo(0);
        t.boolean('reported').notNullable().defaultTo(false);
        t.string('disposition', 1000);
        t.bigInteger('created_at').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.index(['partner_id', 'payload_sha256']);
        t.index(['state', 'deadline_at']);
      });
    },
  },
  {
    // Issue 15: the sent side is written as one packed batch per 32 file (jobs/sent-pack.ts) and
    // turned into sent_records rows when results or reconciliation need them. No query reads
    // sent_records by source file or by merchant/terminal/slip first: those two indexes only cost.
    name: '004_sent_batches',
    async up(db) {
      await db.schema.createTable('sent_batches', (t) => {
        t.bigIncrements('id').primary(); // the order batches were written in, kept when materializing
        t.string('file_id', 64).notNullable(); // the 32 file
        t.integer('part').notNullable(); // a long 32 file is packed in parts of at most 65,536 records
        t.string('source_file_id', 64).notNullable();
        t.string('centre_date', 8).notNullable();
        t.string('fields', 1000).notNullable(); // JSON: the packed record's fields
        t.integer('record_count').notNullable();
        t.bigInteger('first_ref').notNullable();
        t.bigInteger('last_ref').notNullable();
        t.binary('refs').notNullable();
        t.binary('records').notNullable();
        t.text('masked_overrides');
        t.bigInteger('created_at').notNullable();
        t.unique(['file_id', 'part']);
      });
      await db.schema.alterTable('sent_records', (t) => {
        t.dropIndex(['source_file_id']);
        t.dropIndex(['merchant_no', 'terminal_id', 'slip_no', 'use_date']);
      });
    },
  },
  {
    // HULFT bridge (issue 14): what HULFT told the post-send and post-receive jobs, per transfer.
    name: '005_hulft',
    async up(db) {
      await db.schema.createTable('hulft_transfers', (t) => {
        t.increments('id').primary();
        t.string('direction', 8).notNullable(); // send | receive
        t.string('partner_id', 64).notNullable();
        t.string('hulft_file_id', 50).notNullable();
        t.string('host', 68);
        t.string('file_id', 64); // files.id, once there is one
        t.integer('delivery_id'); // deliveries.id of a send attempt
        t.string('attempt_id', 48); // the serial in msg0 (TSG<attemptId>)
        t.string('msg0', 64);
        t.string('hulft_file_name', 1024); // $FILENM, or the path utlsend was given
        t.string('sha256', 64);
        t.bigInteger('size');
        t.string('status', 16); // 完了コード ($STATUS)
        t.string('detail', 16); // 詳細コード ($DETAIL)
        t.bigInteger('record_count'); // $COUNT
        t.integer('rc'); // exit status of utlsend / utlrecv
        t.string('outcome', 16); // running | ok | error | unknown | deferred | landed | failed
        t.string('job_vars', 2000); // the other job variables as JSON ($SDATE, $EDATE, $STIME, $MSG1..5)
        // Receive: one landing per (partner, file ID, sha256); a concurrent run loses here.
        t.string('receive_key', 200).unique();
        t.bigInteger('started_at');
        t.bigInteger('finished_at');
        t.bigInteger('created_at').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.index(['msg0']);
        t.index(['file_id']);
        t.index(['partner_id', 'hulft_file_id', 'created_at']);
      });
    },
  },
  {
    // Utility billing (issue 17): the card vault, its keys and audit, bills, and the 22 events.
    name: '006_utility',
    async up(db) {
      // Data keys of the vault, each wrapped by the key-encryption key.
      await db.schema.createTable('vault_keys', (t) => {
        t.string('id', 16).primary();
        t.text('wrapped').notNullable(); // base64
        t.string('kek_id', 16).notNullable();
        t.bigInteger('created_at').notNullable();
      });
      // One row per utility customer: the card on file (encrypted), found by its HMAC.
      await db.schema.createTable('utility_customers', (t) => {
        t.string('partner_id', 64).notNullable();
        t.string('customer_no', 20).notNullable();
        t.string('state', 8).notNullable(); // active | invalid | deleted
        t.string('card_company_code', 3);
        t.string('card_hmac', 64);
        t.text('card_enc'); // base64 of iv | AES-256-GCM(cardNo|expiry) | tag
        t.string('key_id', 16);
        t.string('masked_card_no', 19);
        t.string('card_last4', 4);
        t.bigInteger('since').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.primary(['partner_id', 'customer_no']);
        t.index(['card_hmac']);
      });
      // Which card a customer had from when to when: masked numbers only.
      await db.schema.createTable('utility_card_history', (t) => {
        t.bigIncrements('id').primary();
        t.string('partner_id', 64).notNullable();
        t.string('customer_no', 20).notNullable();
        t.string('masked_card_no', 19).notNullable();
        t.string('card_company_code', 3);
        t.string('expiry', 4); // YYMM is not a secret on its own once the number is masked
        t.bigInteger('valid_from').notNullable();
        t.bigInteger('valid_to');
        t.string('ended_by', 64);
        t.string('source_file_id', 64);
        t.index(['partner_id', 'customer_no']);
      });
      // Every decryption: which job, which file, how many cards (and whose, when it is one).
      await db.schema.createTable('vault_audit', (t) => {
        t.bigIncrements('id').primary();
        t.bigInteger('at').notNullable();
        t.string('job', 32).notNullable();
        t.string('file_id', 64);
        t.string('partner_id', 64);
        t.string('customer_no', 20);
        t.integer('count').notNullable();
        t.string('purpose', 64).notNullable();
        t.index(['file_id']);
      });
      // A 21 or 42 applied to the vault: the row commits with the changes, so a retry applies nothing twice.
      await db.schema.createTable('utility_applied', (t) => {
        t.string('file_id', 64).primary();
        t.bigInteger('applied_at').notNullable();
      });
      // The 22 lines made from one 21 or 42, in order: a retried job writes the same 22.
      await db.schema.createTable('utility_events', (t) => {
        t.string('source_file_id', 64).notNullable();
        t.integer('seq').notNullable();
        t.string('partner_id', 64).notNullable();
        t.string('customer_no', 20).notNullable();
        t.string('event', 1).notNullable();
        t.string('result_code', 3).notNullable();
        t.string('card_last4', 4).notNullable();
        t.string('event_date', 8).notNullable();
        t.primary(['source_file_id', 'seq']);
      });
      // Bills forwarded to a card company (refused ones are answered at once and not kept).
      await db.schema.createTable('utility_bills', (t) => {
        t.string('partner_id', 64).notNullable();
        t.string('billing_month', 6).notNullable();
        t.string('bill_no', 12).notNullable();
        t.string('customer_no', 20).notNullable();
        t.bigInteger('amount').notNullable();
        t.string('use_date', 8).notNullable();
        t.string('source_file_id', 64).notNullable();
        t.bigInteger('centre_ref').notNullable();
        t.string('card_company_code', 3).notNullable();
        t.string('card_last4', 4).notNullable();
        t.string('result_code', 2);
        t.string('answer_file_id', 64); // the 24 that carried its result
        t.primary(['partner_id', 'billing_month', 'bill_no']);
        t.unique(['centre_ref']);
      });
      // Cards on the card companies' invalid-card lists (51/52), by HMAC: registration answers R06.
      await db.schema.createTable('utility_invalid_cards', (t) => {
        t.string('card_hmac', 64).notNullable();
        t.string('expiry', 4).notNullable(); // 0000: every expiry
        t.string('card_company_code', 3).notNullable();
        t.string('list_until', 8).notNullable();
        t.string('source_file_id', 64).notNullable();
        t.primary(['card_hmac', 'expiry']);
      });
    },
  },
  {
    // Which record of its 23 a bill came from: a bill already recorded for the same file and
    // record is the same bill seen again by a retry; for another record of the same file it is a
    // duplicate within the file (DP), found without holding every bill key of the file in memory.
    name: '007_utility_bill_record',
    async up(db) {
      await db.schema.alterTable('utility_bills', (t) => {
        t.integer('source_record_no');
      });
    },
  },
  {
    // Issue 11: the audit rows become a hash chain (see audit.ts), with its head and the
    // checkpoints that retention leaves behind. Rows already there are chained in id order.
    name: '008_audit_chain',
    async up(db) {
      await db.schema.alterTable('audit', (t) => {
        t.string('prev_hash', 64);
        t.string('hash', 64);
      });
      await db.schema.createTable('audit_chain', (t) => {
        t.integer('id').primary(); // always 1: one row that every append locks
        t.bigInteger('last_id').notNullable();
        t.string('last_hash', 64).notNullable();
      });
      await db.schema.createTable('audit_checkpoints', (t) => {
        t.increments('id').primary();
        t.bigInteger('at').notNullable();
        t.bigInteger('through_id').notNullable();
        t.string('last_hash', 64).notNullable();
        t.bigInteger('pruned_rows').notNullable();
      });
      await chainExistingAudit(db);
    },
  },
  {
    // Issue 17: a 23's forwarded bills are written as packed parts (jobs/utility/bill-pack.ts), one
    // row per 16,384 bills instead of one utility_bills row (three B-trees) per bill, and turned
    // into utility_bills rows when results, reconciliation or `utility show` read them.
    name: '009_utility_bill_batches',
    async up(db) {
      await db.schema.createTable('utility_bill_batches', (t) => {
        t.bigIncrements('id').primary(); // the order parts were written in
        t.string('source_file_id', 64).notNullable(); // the 23
        t.integer('part').notNullable();
        t.string('partner_id', 64).notNullable();
        t.string('fields', 1000).notNullable(); // JSON: the packed record's fields
        t.integer('record_count').notNullable();
        t.bigInteger('first_ref').notNullable(); // bill i of the part has centreRef first_ref + i
        t.binary('records').notNullable();
        t.bigInteger('created_at').notNullable();
        t.unique(['source_file_id', 'part']);
        t.index(['partner_id']);
      });
    },
  },
  {
    // Issue 15: an 81 file's transactions are written packed per transaction date, in parts of at
    // most 65,536 (jobs/terminal/pack.ts), instead of one terminal_txns row and index entry each;
    // reconciliation reads one date's parts. Rows already in terminal_txns stay and are read too.
    name: '010_terminal_batches',
    async up(db) {
      await db.schema.createTable('terminal_batches', (t) => {
        t.bigIncrements('id').primary(); // the order parts were written in: the transactions' load order
        t.string('file_id', 64).notNullable(); // the 81
        t.string('txn_date', 8).notNullable(); // every transaction of the part has this date
        t.integer('part').notNullable();
        t.string('fields', 1000).notNullable(); // JSON: the packed record's fields
        t.integer('record_count').notNullable();
        t.binary('record_nos').notNullable(); // int32 little-endian per transaction
        t.binary('amounts').notNullable(); // float64 little-endian per transaction
        t.binary('records').notNullable();
        t.text('masked_overrides'); // JSON: re-masked card numbers by index, where the bytes were not masked
        t.unique(['file_id', 'txn_date', 'part']);
        t.index(['txn_date']);
      });
    },
  },
];

export async function migrateToLatest(ledger: Ledger): Promise<string[]> {
  const { db } = ledger;
  try {
    await db.raw('create table if not exists schema_migrations (name varchar(128) primary key, applied_at bigint not null)');
  } catch (err) {
    if (!isUniqueViolation(err)) throw err; // PostgreSQL: another process created it at the same moment
  }
  const applied: string[] = [];
  for (const migration of migrations) {
    try {
      await writeTransaction(ledger, async (trx) => {
        // Inserting the name first makes two processes migrating at once collide on the key, not on DDL.
        const done = await trx('schema_migrations').where({ name: migration.name }).first();
        if (done) return;
        await trx('schema_migrations').insert({ name: migration.name, applied_at: Date.now() });
        await migration.up(trx);
        applied.push(migration.name);
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err; // another process applied it
    }
  }
  return applied;
}

