'use strict';
// Stand-in for HULFT's utlsend, utlrecv and utlalivecheck, for tests only (spec hulft.md §7).
// It is NOT HULFT and speaks no HULFT protocol: a "transfer" copies a file from one node's
// folder to another's on this machine, following the documented command interface, TRANSMODE,
// GENCTL, ABNORMAL, JOBWAIT, job lines and the resend queue. See README.md beside it.
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const MSG_KEYS = ['msg0', 'msg1', 'msg2', 'msg3', 'msg4', 'msg5'];

function root() {
  const r = process.env.FAKE_HULFT_ROOT;
  if (!r) throw Object.assign(new Error('FAKE_HULFT_ROOT is not set'), { rc: 2 });
  return r;
}
const nodeDir = (host) => path.join(root(), 'nodes', host);
const self = () => process.env.FAKE_HULFT_SELF || 'SELF';

function loadDefs(host) {
  try {
    return JSON.parse(fs.readFileSync(path.join(nodeDir(host), 'defs.json'), 'utf8'));
  } catch {
    return null;
  }
}

function byId(list, id) {
  if (!list) return undefined;
  if (Array.isArray(list)) return list.find((d) => d.fileId === id);
  return list[id] ? { fileId: id, ...list[id] } : undefined;
}

function appendLog(host, kind, entry) {
  fs.mkdirSync(nodeDir(host), { recursive: true });
  fs.appendFileSync(path.join(nodeDir(host), `${kind}.jsonl`), JSON.stringify(entry) + '\n');
}

function readJson(file, fallback) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return fallback;
  }
}

function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1));
  fs.renameSync(tmp, file);
}

const faultsFile = () => path.join(root(), 'faults.json');

/** Takes one unit of a fault (a count or the head of a list) and returns it, or undefined. */
function takeFault(kind, key) {
  const f = readJson(faultsFile(), {});
  const v = f[kind] && f[kind][key];
  if (v === undefined || v === 0) return undefined;
  let taken;
  if (Array.isArray(v)) {
    taken = v.shift();
    if (v.length === 0) delete f[kind][key];
  } else if (kind === 'failTransfers') {
    taken = v;
    f[kind][key] = v - 1;
  } else {
    taken = v;
    delete f[kind][key];
  }
  writeJson(faultsFile(), f);
  return taken;
}

function sleepMs(ms) {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Parses -name value / -flag options; null on anything unknown or a missing value. */
function parse(argv, valued, flags) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-')) return null;
    const name = a.slice(1);
    if (flags.includes(name)) o[name] = true;
    else if (valued.includes(name)) {
      if (i + 1 >= argv.length) return null;
      o[name] = argv[++i];
    } else return null;
  }
  return o;
}

function msgsOf(o) {
  return MSG_KEYS.map((k) => o[k] || '');
}

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return { date: `${p(d.getFullYear() % 100)}${p(d.getMonth() + 1)}${p(d.getDate())}`, time: `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}` };
}

function countRecords(data) {
  let n = 0;
  for (const b of data) if (b === 0x0a) n++;
  return n || (data.length ? 1 : 0);
}

/** $NAME in a job line, longest names first so $MSGL0 is not read as $MSG + L0. */
function substitute(line, vars) {
  const names = Object.keys(vars).sort((a, b) => b.length - a.length);
  let out = line;
  for (const n of names) out = out.split(`$${n}`).join(vars[n]);
  return out;
}

/** Runs a job's lines with /bin/sh -c, variables replaced and exported; killed at jobwtimeout. */
function runJob(node, defs, jobId, vars) {
  const lines = (defs.jobs && defs.jobs[jobId]) || null;
  if (!lines) {
    appendLog(node, 'job', { at: Date.now(), jobId, error: 'job not registered', rc: 1 });
    return 1;
  }
  const timeoutMs = (defs.jobwtimeout || 3600) * 1000;
  for (const line of lines) {
    const text = substitute(line, vars);
    const r = spawnSync('/bin/sh', ['-c', text], {
      env: { ...process.env, ...vars, FAKE_HULFT_SELF: node },
      timeout: timeoutMs,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timedOut = r.error && r.error.code === 'ETIMEDOUT';
    const rc = r.status === null ? -1 : r.status;
    appendLog(node, 'job', { at: Date.now(), jobId, line: text, rc, timedOut: !!timedOut, stdout: (r.stdout || '').slice(-2000), stderr: (r.stderr || '').slice(-2000) });
    if (rc !== 0) return rc;
  }
  return 0;
}

/** The receiver's file name for this transfer: GENCTL adds .0001 ... wrapping at GENMNGNO. */
function targetName(host, rdef) {
  const g = rdef.generations || 0;
  if (g <= 0) return rdef.fileName;
  const stateFile = path.join(nodeDir(host), 'generations.json');
  const state = readJson(stateFile, {});
  const next = ((state[rdef.fileId] || 0) % g) + 1;
  state[rdef.fileId] = next;
  writeJson(stateFile, state);
  return `${rdef.fileName}.${String(next).padStart(4, '0')}`;
}

/** Writes the received bytes per TRANSMODE, via temp + rename; a broken transfer applies ABNORMAL. */
function writeTarget(rdef, target, data, broken) {
  const mode = rdef.mode || 'new';
  const exists = fs.existsSync(target);
  if (mode === 'new' && exists) return ['250', '205'];
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const previous = exists ? fs.readFileSync(target) : Buffer.alloc(0);
  const whole = mode === 'append' ? Buffer.concat([previous, data]) : data;
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.fakehulft.tmp`);
  if (broken) {
    const partial = whole.subarray(0, whole.length - data.length + Math.floor(data.length / 2));
    const onError = rdef.onError || 'delete';
    if (onError === 'keep') {
      fs.writeFileSync(tmp, partial);
      fs.renameSync(tmp, target);
    } else if (onError === 'delete') {
      fs.rmSync(target, { force: true });
    } // restore: the previous file stays as it was
    return ['512', '0'];
  }
  fs.writeFileSync(tmp, whole);
  fs.renameSync(tmp, target);
  return null;
}

/** One transfer of job.file under job.fileId from job.sender to host, with both sides' jobs. */
function transfer(job, host) {
  const started = new Date();
  let status = '0';
  let detail = '0';
  let target = '';
  let size = 0;
  let count = 0;
  const fail = (s, d) => {
    status = s;
    detail = d;
  };
  const rdefs = loadDefs(host);
  const rdef = rdefs ? byId(rdefs.receive, job.fileId) : undefined;
  if (!rdefs || rdefs.up === false || (rdefs.daemons && rdefs.daemons.rcv === false)) fail('501', '10061');
  else if (!rdef) fail('551', '0');
  else {
    let data = null;
    try {
      data = fs.readFileSync(job.file);
    } catch {
      fail('202', '2');
    }
    if (data) {
      size = data.length;
      count = countRecords(data);
      target = targetName(host, rdef);
      const broken = takeFault('failTransfers', job.fileId) !== undefined;
      const r = writeTarget(rdef, target, data, broken);
      if (r) fail(r[0], r[1]);
    }
  }
  const ended = new Date();
  const s = stamp(started);
  const e = stamp(ended);
  const msgVars = Object.fromEntries(job.msgs.map((m, i) => [`MSG${i}`, m]));
  let receiverJob = null;
  if (rdef && rdefs) {
    const vars = { FILEID: job.fileId, FILENM: target || rdef.fileName, HOST: job.sender, STATUS: status, DETAIL: detail, COUNT: String(count), SDATE: s.date, EDATE: e.date, STIME: s.time, ...msgVars, MSGL0: '', MSGL1: '' };
    const jobId = status === '0' ? rdef.jobs && rdef.jobs.success : rdef.jobs && rdef.jobs.failure;
    if (jobId) {
      const rc = runJob(host, rdefs, jobId, vars);
      receiverJob = { jobId, rc };
      // JOBWAIT=J: the sender's transfer ends with the receiver's job; a failed job fails it.
      if (status === '0' && rc !== 0 && rdef.notify === 'job') fail('229', String(rc));
    }
    appendLog(host, 'rcv', { fileId: job.fileId, host: job.sender, fileName: target, start: started.getTime(), end: ended.getTime(), type: 'B', count, size, status, detail, jobId: receiverJob && receiverJob.jobId, msg: job.msgs });
  }
  const sdefs = loadDefs(job.sender) || {};
  const sdef = byId(sdefs.send, job.fileId) || job.sendDef || {};
  const senderJobId = status === '0' ? sdef.jobs && sdef.jobs.success : sdef.jobs && sdef.jobs.failure;
  appendLog(job.sender, 'snd', { fileId: job.fileId, host, fileName: job.file, start: started.getTime(), end: ended.getTime(), type: 'B', count, size, status, detail, jobId: senderJobId || null, msg: job.msgs });
  if (status !== '0') {
    const qFile = path.join(nodeDir(job.sender), 'resend.json');
    const q = readJson(qFile, []);
    q.push({ fileId: job.fileId, host, file: job.file, msgs: job.msgs, status, detail, at: Date.now() });
    writeJson(qFile, q);
  }
  if (senderJobId) {
    const vars = { FILEID: job.fileId, FILENM: job.file, HOST: host, STATUS: status, DETAIL: detail, COUNT: String(count), SDATE: s.date, EDATE: e.date, STIME: s.time, ...msgVars, MSGL0: '', MSGL1: '' };
    runJob(job.sender, sdefs, senderJobId, vars);
  }
  return status === '0';
}

function runAll(job) {
  let ok = 0;
  for (const host of job.hosts) if (transfer(job, host)) ok++;
  return ok === job.hosts.length;
}

/** A transfer that goes on after the command returned (no -sync, or -w expired). */
function detach(job, delaySeconds) {
  const child = spawn(process.execPath, [__filename, '__transfer', JSON.stringify(job), String(delaySeconds)], { detached: true, stdio: 'ignore', env: process.env });
  child.unref();
}

function checkEnv() {
  const hulpath = process.env.HULPATH;
  if (!hulpath || !fs.existsSync(hulpath)) return 10; // HULPATH not set or not there
  return 0;
}

function sendOrWait(job, o) {
  const w = o.w === undefined ? 0 : Number(o.w);
  if (!o.sync) {
    detach(job, Number(takeFault('delaySeconds', job.fileId) || 0));
    return 0;
  }
  const delay = Number(takeFault('delaySeconds', job.fileId) || 0);
  if (w > 0 && delay > w) {
    detach(job, delay);
    sleepMs(w * 1000);
    return 4; // timeout: the transfer may still succeed
  }
  sleepMs(delay * 1000);
  return runAll(job) ? 0 : 21;
}

function utlsend(argv) {
  const o = parse(argv, ['f', 'file', 'h', 't', 'w', 'r', 'p', ...MSG_KEYS, 'msgl0', 'msgl1'], ['sync', 'np']);
  if (!o || !o.f) return 2;
  if (o.t && o.h) return 2;
  if (o.r && (o.h || o.t)) return 2;
  const msgs = msgsOf(o);
  if (msgs.some((m) => Buffer.byteLength(m) > 50)) return 2;
  if (o.w !== undefined && !/^\d+$/.test(o.w)) return 2;
  const envRc = checkEnv();
  if (envRc) return envRc;
  const forced = takeFault('rc', 'utlsend');
  if (forced !== undefined) return Number(forced);
  const me = self();
  const defs = loadDefs(me);
  if (!defs) return 8; // no status file / node
  if (defs.daemons && defs.daemons.snd === false) return 9;
  const def = byId(defs.send, o.f);
  if (!def) return 11;
  if (o.r) {
    const qFile = path.join(nodeDir(me), 'resend.json');
    const q = readJson(qFile, []);
    let idx = -1;
    for (let i = q.length - 1; i >= 0; i--) if (q[i].fileId === o.f && q[i].host === o.r && (!o.file || q[i].file === o.file)) { idx = i; break; }
    if (idx < 0) return 1; // nothing matching in 再配信待ち
    const entry = q.splice(idx, 1)[0];
    writeJson(qFile, q);
    return sendOrWait({ sender: me, fileId: o.f, file: entry.file, hosts: [entry.host], msgs: entry.msgs, sendDef: def }, o);
  }
  if ((o.file || o.h || o.t) && !defs.dynparam) return 2;
  if ((def.transferType || 'text') !== 'binary' || (def.codeConversion || 'sender') !== 'none') return 2; // the stand-in only moves bytes
  const group = o.t || def.group;
  const hosts = o.h ? [o.h] : (defs.groups && defs.groups[group]) || [];
  if (hosts.length === 0) return 2;
  if (hosts.length > 1 && def.clear && def.clear !== 'keep') return 6;
  return sendOrWait({ sender: me, fileId: o.f, file: o.file || def.fileName, hosts, msgs, sendDef: def }, o);
}

function utlrecv(argv) {
  const o = parse(argv, ['f', 'h', 'w', ...MSG_KEYS, 'msgl0', 'msgl1'], ['sync']);
  if (!o || !o.f || !o.h) return 2;
  const msgs = msgsOf(o);
  if (msgs.some((m) => Buffer.byteLength(m) > 50)) return 2;
  if (o.w !== undefined && !/^\d+$/.test(o.w)) return 2;
  const envRc = checkEnv();
  if (envRc) return envRc;
  const forced = takeFault('rc', 'utlrecv');
  if (forced !== undefined) return Number(forced);
  const me = self();
  const defs = loadDefs(me);
  if (!defs) return 8;
  if (defs.daemons && defs.daemons.rcv === false) return 9;
  if (!byId(defs.receive, o.f)) return 11;
  const partner = loadDefs(o.h);
  const pdef = partner ? byId(partner.send, o.f) : undefined;
  const accepting = partner && partner.up !== false && !(partner.daemons && (partner.daemons.obs === false || partner.daemons.snd === false));
  if (!accepting || !pdef) {
    appendLog(me, 'rcv', { fileId: o.f, host: o.h, request: true, status: accepting ? '551' : '501', msg: msgs });
    return o.sync ? 21 : 0;
  }
  return sendOrWait({ sender: o.h, fileId: o.f, file: pdef.fileName, hosts: [me], msgs, sendDef: pdef }, o);
}

function utlalivecheck(argv) {
  const o = parse(argv, ['h', 'p', 'w'], []);
  if (!o || !o.h) return 2;
  const defs = loadDefs(o.h);
  if (!defs || defs.up === false) return 1;
  if (o.p === undefined) return 0;
  const p = Number(o.p);
  const ports = defs.ports || { rcv: 30000, obs: 31000 };
  const d = defs.daemons || {};
  if (p === ports.rcv && d.rcv !== false) return 0;
  if (p === ports.obs && d.obs !== false) return 0;
  return 1;
}

function main(command, argv) {
  let rc;
  try {
    rc = command === 'utlsend' ? utlsend(argv) : command === 'utlrecv' ? utlrecv(argv) : utlalivecheck(argv);
  } catch (err) {
    process.stderr.write(`fake ${command}: ${err.stack || err}\n`);
    rc = err.rc || 99;
  }
  try {
    appendLog(self(), 'cmd', { at: Date.now(), command, argv, rc });
  } catch {
    // no root: nothing to log into
  }
  process.exit(rc);
}

if (require.main === module && process.argv[2] === '__transfer') {
  const job = JSON.parse(process.argv[3]);
  sleepMs(Number(process.argv[4] || 0) * 1000);
  runAll(job);
}

module.exports = { main };
