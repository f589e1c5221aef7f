// Squeezer's upload page: choose files, create a job, send each file straight to storage
// (a presigned POST form, a presigned PUT, or a multipart upload in signed parts), then
// follow the job until every file is final and show the results with download links.
//
// Every URL is relative to the page: on API Gateway the API sits under a stage prefix
// (https://.../api/app), so the API's base is the page's own folder. The token lives in
// sessionStorage (this tab only) and goes only into the Authorization header of API calls.

import { Crc64Nvme } from "./crc64nvme.js";

const API_BASE = new URL(".", location.href);
const TOKEN_KEY = "squeezer-token";
const PARALLEL_FILES = 4; // files sent at once
const PARTS_AHEAD = 4; // parts of a multipart upload read, checksummed, signed and sent together
const SEND_ATTEMPTS = 3; // a transfer that failed on the network or a 5xx is tried again
const POLL_MS = 1000;
const FINAL_STATES = new Set(["completed", "failed", "cancelled"]);
// XMLHttpRequest refuses to set these (the browser sends the right Content-Length itself).
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection", "expect", "origin", "referer"]);
const MEDIA_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+$/;

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A transfer to storage failed; `retry` when trying again may help (network error, 5xx). */
class TransferError extends Error {
  constructor(message, retry) {
    super(message);
    this.retry = retry;
  }
}

/** One chosen file, its row in the table and what the service says about it. */
class Entry {
  constructor(name, file) {
    this.name = name;
    this.file = file;
    this.sent = 0; // bytes uploaded so far
    this.fileId = null;
    this.status = null; // the file's entry in GET /jobs/{id}
    this.error = null; // a local failure (refused before the job, or the upload failed)
    this.uploaded = false;
    this.row = null;
    this.cells = null;
    this.bar = null;
  }

  get settled() {
    return this.error !== null || (this.status !== null && FINAL_STATES.has(this.status.state));
  }
}

const chosen = new Map(); // name -> Entry
let running = false;

// -- formatting ------------------------------------------------------------------------------
function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function formatPercent(fraction) {
  return `${(fraction * 100).toFixed(1)}%`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function say(message) {
  $("status").textContent = message;
}

// -- the API -------------------------------------------------------------------------------
function token() {
  return $("token").value.trim();
}

/** A JSON API call relative to the API's base; ApiError with the API's code and message on failure. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (path !== "") headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, API_BASE), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "unreachable", "The API could not be reached: check your connection and try again.");
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const error = answer && answer.error ? answer.error : { code: "http_" + response.status, message: "" };
    throw new ApiError(response.status, error.code, explainApiError(response.status, error));
  }
  return answer;
}

function explainApiError(status, error) {
  if (status === 401) {
    return "The token was refused (" + error.code + "): paste a valid token; an operator issues them.";
  }
  if (status === 429) return "Over your limits for now: " + error.message;
  return error.message || `The API answered ${status}.`;
}

// -- transfers to storage (XMLHttpRequest: fetch has no upload progress) ----------------------
function send(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) {
      if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) request.setRequestHeader(name, value);
    }
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress(1);
        resolve(request);
      } else {
        reject(new TransferError(storageRefusal(request), request.status >= 500));
      }
    };
    request.onerror = () =>
      reject(new TransferError("the connection to storage failed (a network error, or storage refused this page's origin)", true));
    request.send(body);
  });
}

function storageRefusal(request) {
  const text = request.responseText || "";
  const code = /<Code>([^<]*)<\/Code>/.exec(text);
  const message = /<Message>([^<]*)<\/Message>/.exec(text);
  const what = [code && code[1], message && message[1]].filter(Boolean).join(": ");
  return `storage refused the upload (HTTP ${request.status}${what ? ", " + what : ""})`;
}

async function withRetries(transfer) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transfer();
    } catch (error) {
      if (!(error instanceof TransferError) || !error.retry || attempt >= SEND_ATTEMPTS) throw error;
      await sleep(500 * 2 ** attempt);
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One request: a presigned POST form (fields in order, the file last) or a presigned PUT. */
async function sendWhole(entry, upload) {
  const size = entry.file.size;
  const progress = (fraction) => setSent(entry, fraction * size);
  if (upload.method === "POST") {
    await withRetries(() => {
      const form = new FormData();
      for (const [name, value] of Object.entries(upload.fields || {})) form.append(name, value);
      form.append("file", entry.file);
      return send("POST", upload.url, upload.headers, form, progress);
    });
  } else {
    await withRetries(() => send(upload.method, upload.url, upload.headers, entry.file, progress));
  }
}

/** A multipart upload: each part checksummed (CRC64NVME), signed a few at a time, sent, then completed. */
async function sendParts(jobId, entry, plan) {
  const base = `jobs/${encodeURIComponent(jobId)}/files/${encodeURIComponent(entry.fileId)}`;
  const size = entry.file.size;
  const partSize = plan.part_size;
  const sentByPart = new Map();
  const whole = new Crc64Nvme(); // the parts are read in order: one running checksum
  const progress = () => setSent(entry, [...sentByPart.values()].reduce((a, b) => a + b, 0));
  try {
    for (let first = 1; first <= plan.part_count; first += PARTS_AHEAD) {
      const parts = [];
      for (let number = first; number < first + PARTS_AHEAD && number <= plan.part_count; number++) {
        const start = (number - 1) * partSize;
        const blob = entry.file.slice(start, Math.min(start + partSize, size));
        const bytes = new Uint8Array(await blob.arrayBuffer());
        whole.update(bytes);
        // The blob is sent, not these bytes: one part at a time is held in memory.
        parts.push({ number, blob, crc64nvme: new Crc64Nvme().update(bytes).base64 });
      }
      const signed = await api("POST", `${base}/parts`, {
        parts: parts.map((part) => ({ part_number: part.number, crc64nvme: part.crc64nvme })),
      });
      const urls = new Map(signed.parts.map((part) => [part.part_number, part]));
      await Promise.all(
        parts.map((part) => {
          const url = urls.get(part.number);
          return withRetries(() =>
            send(url.method, url.url, url.headers, part.blob, (fraction) => {
              sentByPart.set(part.number, fraction * part.blob.size);
              progress();
            }),
          );
        }),
      );
    }
    await api("POST", `${base}/complete`, { crc64nvme: whole.base64 });
  } catch (error) {
    // Abort, so storage keeps no parts and the file fails now instead of in three days.
    await api("DELETE", `${base}/upload`).catch(() => undefined);
    throw error;
  }
}

async function upload(jobId, entry, answer) {
  try {
    if (answer.upload) await sendWhole(entry, answer.upload);
    else if (answer.multipart) await sendParts(jobId, entry, answer.multipart);
    else throw new Error("the API gave no way to upload this file");
    entry.uploaded = true;
  } catch (error) {
    entry.error = "Upload failed: " + error.message;
  }
  renderRow(entry);
  renderTotals();
}

/** Run `task` on every item, at most `limit` at once. */
async function pool(items, limit, task) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await task(queue.shift());
  });
  await Promise.all(workers);
}

// -- a run: jobs of at most max_files_per_job files -------------------------------------------
async function run() {
  if (!token()) throw new Error("Paste your API token first.");
  const entries = [...chosen.values()].filter((entry) => entry.fileId === null && entry.error === null);
  if (!entries.length) throw new Error("Choose files (or a folder) first.");
  const { algorithm, level } = compression();
  say("Asking the API for its limits…");
  const { limits } = await api("GET", "");
  for (const entry of entries) {
    if (entry.file.size > limits.max_file_size) {
      entry.error = `Larger than the service accepts (${formatBytes(limits.max_file_size)}).`;
      renderRow(entry);
    }
  }
  const sendable = entries.filter((entry) => entry.error === null);
  const batches = [];
  for (let i = 0; i < sendable.length; i += limits.max_files_per_job) {
    batches.push(sendable.slice(i, i + limits.max_files_per_job));
  }
  for (const [index, batch] of batches.entries()) {
    const of = batches.length > 1 ? ` (job ${index + 1} of ${batches.length})` : "";
    say(`Creating a job for ${plural(batch.length, "file")}${of}…`);
    const job = await api("POST", "jobs", {
      files: batch.map((entry) => describe(entry.name, entry.file)),
      algorithm,
      level,
      // Forms (multipart/form-data) up to max_post_size; larger files come back with a multipart plan.
      upload_method: "post",
    });
    const answers = new Map(job.files.map((answer) => [answer.name, answer]));
    for (const entry of batch) entry.fileId = answers.get(entry.name).file_id;
    say(`Uploading ${plural(batch.length, "file")}${of}…`);
    const uploads = pool(batch, PARALLEL_FILES, (entry) => upload(job.job_id, entry, answers.get(entry.name)));
    await Promise.all([uploads, follow(job.job_id, batch, of)]);
  }
  announceDone();
}

function describe(name, file) {
  const spec = { name, size: file.size };
  if (MEDIA_TYPE.test(file.type)) spec.content_type = file.type;
  return spec;
}

function compression() {
  const option = $("algorithm").selectedOptions[0];
  const level = Number($("level").value);
  const min = Number(option.dataset.min);
  const max = Number(option.dataset.max);
  if (!Number.isInteger(level) || level < min || level > max) {
    $("level").focus();
    throw new Error(`The level for ${option.value} is a whole number from ${min} to ${max}.`);
  }
  return { algorithm: option.value, level };
}

/** GET /jobs/{id}, every page of its files (the API answers up to limits.max_status_page at a time). */
async function jobStatus(jobId) {
  const path = `jobs/${encodeURIComponent(jobId)}`;
  let page = await api("GET", path);
  const files = [...page.files];
  while (page.next_cursor) {
    page = await api("GET", `${path}?cursor=${encodeURIComponent(page.next_cursor)}`);
    files.push(...page.files);
  }
  return { ...page, files };
}

/** Poll the job until each of these files is final (or failed here), updating the table. */
async function follow(jobId, entries, of) {
  const byId = new Map(entries.map((entry) => [entry.fileId, entry]));
  let failures = 0;
  while (!entries.every((entry) => entry.settled)) {
    await sleep(POLL_MS);
    let status;
    try {
      status = await jobStatus(jobId);
      failures = 0;
    } catch (error) {
      failures += 1;
      if (failures >= 5 || (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429)) {
        for (const entry of entries) {
          if (!entry.settled) entry.error = "Status unknown: " + error.message;
        }
        break;
      }
      continue;
    }
    for (const file of status.files) {
      const entry = byId.get(file.file_id);
      if (entry) {
        entry.status = file;
        renderRow(entry);
      }
    }
    renderTotals();
    const done = entries.filter((entry) => entry.settled).length;
    if (entries.every((entry) => entry.uploaded || entry.settled)) {
      say(`Compressing${of}: ${done} of ${plural(entries.length, "file")} done…`);
    }
  }
  for (const entry of entries) renderRow(entry);
  renderTotals();
}

function announceDone() {
  const all = [...chosen.values()];
  const completed = all.filter((entry) => entry.status && entry.status.state === "completed");
  const failed = all.filter((entry) => entry.error || (entry.status && entry.status.state !== "completed"));
  const totals = sumUp(all);
  const saved = totals.bytesIn ? `, saved ${formatBytes(totals.bytesIn - totals.bytesOut)} (${formatPercent(1 - totals.bytesOut / totals.bytesIn)})` : "";
  say(`Done: ${completed.length} completed, ${failed.length} failed${saved}.`);
}

// -- the table -------------------------------------------------------------------------------
function setSent(entry, bytes) {
  entry.sent = Math.min(bytes, entry.file.size);
  renderUpload(entry);
  renderOverall();
}

function cell(row, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  row.append(td);
  return td;
}

function addRow(entry) {
  const row = document.createElement("tr");
  const name = document.createElement("th");
  name.scope = "row";
  name.className = "name";
  name.textContent = entry.name;
  row.append(name);
  entry.cells = {
    size: cell(row, "num"),
    upload: cell(row),
    state: cell(row),
    compressed: cell(row, "num"),
    ratio: cell(row, "num"),
    saved: cell(row, "num"),
    result: cell(row),
  };
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${entry.name}`);
  entry.cells.upload.append(bar);
  entry.bar = bar;
  entry.row = row;
  $("results").tBodies[0].append(row);
  renderRow(entry);
}

function renderUpload(entry) {
  const size = entry.file.size;
  entry.bar.value = size ? entry.sent / size : entry.uploaded ? 1 : 0;
  entry.bar.textContent = formatPercent(entry.bar.value);
}

function renderRow(entry) {
  const cells = entry.cells;
  const status = entry.status;
  cells.size.textContent = formatBytes(entry.file.size);
  renderUpload(entry);
  const state = entry.error ? "failed" : status ? status.state : entry.fileId ? "uploading" : "chosen";
  cells.state.textContent = state;
  cells.state.className = `state-${state}`;
  const compressed = status && status.state === "completed" ? status.compressed_size : null;
  cells.compressed.textContent = compressed === null ? "" : formatBytes(compressed);
  cells.ratio.textContent = compressed === null || !entry.file.size ? "" : formatPercent(compressed / entry.file.size);
  cells.saved.textContent = compressed === null ? "" : formatBytes(entry.file.size - compressed);
  cells.result.replaceChildren();
  if (status && status.download_url) {
    const link = document.createElement("a");
    link.href = status.download_url;
    link.download = status.download_name;
    link.rel = "noreferrer";
    link.textContent = status.download_name;
    cells.result.append(link);
  }
  const problem = entry.error || (status && status.error ? status.error.message : null);
  if (problem) {
    const text = document.createElement("span");
    text.className = "error";
    text.textContent = problem;
    cells.result.append(text);
  }
}

function sumUp(entries) {
  let bytesIn = 0;
  let bytesOut = 0;
  for (const entry of entries) {
    if (entry.status && entry.status.state === "completed") {
      bytesIn += entry.file.size;
      bytesOut += entry.status.compressed_size;
    }
  }
  return { bytesIn, bytesOut };
}

function renderTotals() {
  const all = [...chosen.values()];
  const { bytesIn, bytesOut } = sumUp(all);
  $("total-size").textContent = formatBytes(all.reduce((sum, entry) => sum + entry.file.size, 0));
  const completed = all.filter((entry) => entry.status && entry.status.state === "completed").length;
  $("total-state").textContent = all.length ? `${completed} of ${all.length} completed` : "";
  $("total-compressed").textContent = bytesIn ? formatBytes(bytesOut) : "";
  $("total-ratio").textContent = bytesIn ? formatPercent(bytesOut / bytesIn) : "";
  $("total-saved").textContent = bytesIn ? formatBytes(bytesIn - bytesOut) : "";
  renderOverall();
}

function renderOverall() {
  const started = [...chosen.values()].filter((entry) => entry.fileId !== null);
  const total = started.reduce((sum, entry) => sum + entry.file.size, 0);
  const sent = started.reduce((sum, entry) => sum + entry.sent, 0);
  const fraction = total ? sent / total : started.length && started.every((entry) => entry.uploaded) ? 1 : 0;
  $("overall").value = fraction;
  $("overall").textContent = formatPercent(fraction);
  $("overall-text").textContent = started.length ? `${formatBytes(sent)} of ${formatBytes(total)}` : "";
}

// -- choosing files ------------------------------------------------------------------------
/** Why the API would refuse this name (chalicelib/validation.py check_name), or null. */
function nameProblem(name) {
  if (name.includes("\\")) return "its name has a backslash";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "its name has control characters";
  if (new TextEncoder().encode(name).length > 1024) return "its name is longer than 1024 bytes";
  if (name.split("/").some((part) => part === "" || part === "." || part === "..")) return "its path is not a clean relative path";
  return null;
}

function choose(files) {
  if (running) return;
  for (const [name, file] of files) {
    const existing = chosen.get(name);
    if (existing && existing.fileId !== null) continue; // already sent in this page's jobs
    if (existing) existing.row.remove();
    const entry = new Entry(name, file);
    const problem = nameProblem(name);
    if (problem) entry.error = `Not sent: ${problem}.`;
    chosen.set(name, entry);
    addRow(entry);
  }
  const count = chosen.size;
  const bytes = [...chosen.values()].reduce((sum, entry) => sum + entry.file.size, 0);
  $("selection").textContent = count ? `${plural(count, "file")}, ${formatBytes(bytes)}.` : "No files chosen.";
  renderTotals();
}

async function walk(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push([entry.fullPath.replace(/^\/+/, ""), file]);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, out);
    }
  }
}

async function dropped(event) {
  // The entries must be taken before the first await: the data transfer is emptied after the event.
  const items = [...event.dataTransfer.items].filter((item) => item.kind === "file");
  const entries = items.map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.some((entry) => entry === null)) {
    choose([...event.dataTransfer.files].map((file) => [file.name, file]));
    return;
  }
  const files = [];
  for (const entry of entries) await walk(entry, files);
  choose(files);
}

// -- wiring ----------------------------------------------------------------------------------
function syncLevel(useDefault) {
  const option = $("algorithm").selectedOptions[0];
  const level = $("level");
  level.min = option.dataset.min;
  level.max = option.dataset.max;
  if (useDefault) level.value = option.dataset.default;
  $("level-range").textContent = `${option.dataset.min} to ${option.dataset.max}, default ${option.dataset.default}`;
}

function setRunning(value) {
  running = value;
  for (const id of ["start", "files", "folder", "clear", "algorithm", "level"]) $(id).disabled = value;
}

function start() {
  const tokenField = $("token");
  tokenField.value = sessionStorage.getItem(TOKEN_KEY) || "";
  tokenField.addEventListener("input", () => {
    const value = token();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenField.value = "";
    tokenField.focus();
  });

  $("algorithm").addEventListener("change", () => syncLevel(true));
  syncLevel(false);

  $("files").addEventListener("change", (event) => {
    choose([...event.target.files].map((file) => [file.name, file]));
    event.target.value = "";
  });
  $("folder").addEventListener("change", (event) => {
    choose([...event.target.files].map((file) => [file.webkitRelativePath || file.name, file]));
    event.target.value = "";
  });
  $("clear").addEventListener("click", () => {
    for (const entry of chosen.values()) entry.row.remove();
    chosen.clear();
    choose([]);
  });

  const zone = $("drop-zone");
  // Outside the zone a dropped file would replace the page.
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    dropped(event).catch((error) => say("Could not read the dropped files: " + error.message));
  });

  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (running) return;
    setRunning(true);
    run()
      .catch((error) => say(error.message))
      .finally(() => setRunning(false));
  });
}

start();
