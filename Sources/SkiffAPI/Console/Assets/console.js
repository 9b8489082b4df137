/*
 * Skiff console: the browser front end served at /ui/ (index.html, console.css, this file).
 *
 * One page with hash routes: #/ (overview), #/queues/<name>, #/topics and #/topics/<name>. It
 * calls the HTTP API at the server's root (/api/..., /queues; no path prefix), sending `Authorization: Bearer <key>` once the user
 * signed in (the key stays in sessionStorage: never localStorage, never a URL). Pages refresh
 * every 2 s, back off on errors and pause while the tab is hidden.
 *
 * The server sends it under a strict Content-Security-Policy: no eval, no inline style, no
 * innerHTML. Server data reaches the page through textContent and attributes only, never as
 * markup. A module only for its own scope and strict mode: it imports and exports nothing.
 */
const KEY_STORAGE = 'skiff-console.apiKey';
const POLL_MS = 2000;
const MAX_BACKOFF_MS = 30000;
const PER_ROUND = 100; // queues (and topics) whose details one overview round asks for
const PARALLEL = 4; // requests in flight at once within a round
const MAX_ROWS = 500; // queue rows drawn at once; the filter reaches the others
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,128}$/;

// --- DOM helpers --------------------------------------------------------------------------------

/** An element: `props` are properties (class, text, on*, dataset, hidden...) or attributes. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== 'string') el[name] = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  el.append(...children.flat().filter((child) => child != null && child !== false));
  return el;
}

/** An SVG element with attributes. */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

const $ = (id) => document.getElementById(id);
const view = () => $('view');
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/** A message area: `show(text, kind)`, kind 'error' (default), 'ok' or 'info'; `show(null)` hides it. */
function messageBox(role = 'status', el = h('p', { role, hidden: true })) {
  el.show = (text, kind = 'error') => {
    el.hidden = !text;
    el.textContent = text || '';
    el.className = `msg ${kind}`;
  };
  return el;
}

// --- Formatting ---------------------------------------------------------------------------------

const integer = new Intl.NumberFormat();
const count = (n) => (n == null ? '—' : integer.format(n));
function rate(n) {
  if (n == null) return '—';
  if (n === 0) return '0';
  if (n < 1) return String(Number(n.toPrecision(2)));
  return n < 100 ? n.toFixed(1) : integer.format(Math.round(n));
}
/** A duration in ms as people say it: 850 ms, 4.2 s, 3 min 5 s, 24 min, 2 h 10 min, 4 d 2 h. */
function duration(ms) {
  if (ms == null) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
  const [m, hours, days] = [s / 60, s / 3600, s / 86400].map(Math.floor);
  if (m < 60) return `${m} min${m < 10 && s % 60 >= 1 ? ` ${Math.floor(s % 60)} s` : ''}`;
  if (hours < 48) return `${hours} h${m % 60 ? ` ${m % 60} min` : ''}`;
  return `${days} d${hours % 24 ? ` ${hours % 24} h` : ''}`;
}
const clock = (ms, seconds) =>
  new Date(ms).toLocaleTimeString([], { hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined });
const plural = (n, word) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
const queueHref = (name) => `#/queues/${encodeURIComponent(name)}`;
const topicHref = (name) => `#/topics/${encodeURIComponent(name)}`;

// --- The API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0: the server could not be reached
  }
}

/**
 * JSON.parse for message bodies: a number a double cannot hold exactly (a big integer, 1.0)
 * stays as written (JSON.rawJSON, where the browser has it), so a body shows as it was posted.
 */
function parseBodies(text) {
  if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
  return JSON.parse(text, (key, value, context) =>
    typeof value === 'number' && context && context.source !== String(value) ? JSON.rawJSON(context.source) : value);
}

/**
 * One API call: the parsed JSON answer (null when empty), or an ApiError with the server's
 * `{"error": ...}` message. A 401 also brings up the login form, unless `probe`.
 */
async function api(path, { method = 'GET', body, key = auth.key(), signal, probe, lossless } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  let text;
  try {
    response = await fetch(path, { method, headers, signal, cache: 'no-store', body: body && JSON.stringify(body) });
    text = await response.text();
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, `Cannot reach the server (${error.message})`);
  }
  let data = null;
  try {
    data = text ? (lossless && response.ok ? parseBodies : JSON.parse)(text) : null;
  } catch {
    if (response.ok) throw new ApiError(response.status, `The server answered ${response.status} with a body that is not JSON`);
  }
  if (response.ok) return data;
  const message = typeof data?.error === 'string' ? data.error : `HTTP ${response.status} ${response.statusText}`.trim();
  if (response.status === 401 && !probe) auth.demand(message);
  throw new ApiError(response.status, message);
}

/**
 * One segment of an API path, percent-encoded. Never `.` or `..`: encodeURIComponent leaves dots
 * alone and a browser resolves such a segment away before sending, so `/api/q/messages/..` would
 * go out as `/api/q/`, a plain receive, which deletes the message it hands out.
 */
function segment(value) {
  const encoded = encodeURIComponent(value);
  if (/^\.+$/.test(encoded)) throw new ApiError(400, `“${value}” is not a name or an id.`);
  return encoded;
}

const queuePath = (name, rest = '') => `/api/${segment(name)}${rest}`;
const subscriptionsPath = (topic) => `/api/topics/${segment(topic)}/subscriptions`;
// A message id: 26 letters and digits (Crockford base 32, a ULID's layout).
const MESSAGE_ID = /^[0-9A-Za-z]{26}$/;

/** Runs `task` over `items`, `limit` at a time; answers the results in order. */
async function inBatches(items, limit, task) {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// --- Sign in and out ----------------------------------------------------------------------------

const auth = {
  locked: false, // the login form is up: no page runs
  key() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null; // storage disabled: the console still works with a server without keys
    }
  },
  store: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),

  /** A 401: stop everything and ask for a key, saying why when a stored key was refused. */
  demand(message) {
    if (this.locked) return;
    const refused = this.key() != null;
    this.clear();
    this.lock(true, refused ? message : null);
  },

  /** Swaps the page for the login form (`locked`) or back. */
  lock(locked, message, kind) {
    this.locked = locked;
    $('login').hidden = !locked;
    view().hidden = document.querySelector('.top nav').hidden = locked;
    if (!locked) return route(true);
    live.stop();
    closeDialog();
    view().replaceChildren();
    $('sign-out').hidden = true;
    $('login-error').show(message, kind);
    document.title = 'Sign in · Skiff console';
    $('api-key').focus();
  },
};

/** Tries the key on GET /queues (admin scope) before keeping it: a 401 or 403 keeps the form. */
async function signIn(event) {
  event.preventDefault();
  const input = $('api-key');
  const key = input.value.trim();
  const submit = event.submitter || event.target.querySelector('button');
  submit.disabled = true;
  try {
    if (!key) throw new ApiError(0, 'Enter an API key.');
    await api('/queues', { key, probe: true });
    auth.store(key);
    input.value = '';
    $('login-error').show(null);
    auth.lock(false);
  } catch (error) {
    $('login-error').show(error.message);
    input.select();
  } finally {
    submit.disabled = false;
  }
}

// --- Live refresh: a page's round every 2 s; after errors 4, 8, 16, 30 s; paused while hidden ----

const live = {
  task: null, // {refresh(signal), onError(error | null)}
  round: null, // the AbortController of the round in progress
  timer: 0,
  delay: POLL_MS,

  start(task) {
    this.stop();
    Object.assign(this, { task, delay: POLL_MS });
    this.run();
  },

  stop() {
    clearTimeout(this.timer);
    this.round?.abort();
    this.round = this.task = null;
    setLiveStatus(null);
  },

  /** Runs a round now (unless one is running), then schedules the next. */
  async run() {
    clearTimeout(this.timer);
    const task = this.task;
    if (!task || this.round) return;
    if (document.hidden) return setLiveStatus('paused');
    const round = (this.round = new AbortController());
    try {
      await task.refresh(round.signal);
      if (this.task !== task) return;
      this.delay = POLL_MS;
      setLiveStatus('live');
      task.onError(null);
    } catch (error) {
      if (this.task !== task || error.name === 'AbortError' || auth.locked) return;
      this.delay = Math.min(this.delay * 2, MAX_BACKOFF_MS);
      setLiveStatus('reconnecting', error.message, this.delay);
      task.onError(error);
    } finally {
      if (this.round === round) this.round = null;
    }
    if (this.task !== task) return;
    if (document.hidden) setLiveStatus('paused'); // hidden mid-round: resumes when shown
    else this.timer = setTimeout(() => this.run(), this.delay);
  },
};

document.addEventListener('visibilitychange', () => {
  if (!live.task) return;
  if (!document.hidden) return live.run();
  clearTimeout(live.timer);
  setLiveStatus('paused');
});

/** The header's status: live, paused, reconnecting (the error in its tooltip), or nothing. */
function setLiveStatus(state, error, delay) {
  const el = $('live-status');
  el.className = `live is-${state}`;
  el.title = error || '';
  el.textContent = { live: 'Live', paused: 'Paused', reconnecting: `Reconnecting in ${delay / 1000} s` }[state] || '';
}

// --- Sortable tables, updated in place so that focus and scroll survive each refresh ------------

const sortMemory = new Map(); // table id -> {column, descending}, kept across pages

class DataTable {
  /**
   * columns: [{id, label, value(item): the sort key (and the text unless `text`), text(item),
   * href(item): the cell is a link, numeric, optional: hidden while no item has a value}];
   * key(item): a row's identity.
   */
  constructor({ id, caption, columns, key, empty }) {
    Object.assign(this, { id, columns, key, empty, items: [], rows: new Map() });
    this.sort = sortMemory.get(id) || { column: columns[0].id, descending: false };
    this.headers = columns.map((column) => h('th', { scope: 'col', class: column.numeric && 'num' },
      h('button', { type: 'button', onclick: () => this.sortBy(column) }, column.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }))));
    this.body = h('tbody');
    this.emptyRow = h('tr', { class: 'empty' }, h('td', { colspan: columns.length }));
    // The box scrolls on narrow screens: focusable, so that a keyboard can scroll it too.
    this.element = h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': `${caption} table` },
      h('table', {}, h('caption', { class: 'visually-hidden', text: caption }), h('thead', {}, h('tr', {}, this.headers)), this.body));
    this.renderHeaders();
  }

  sortBy(column) {
    const same = this.sort.column === column.id;
    this.sort = { column: column.id, descending: same ? !this.sort.descending : !!column.numeric };
    sortMemory.set(this.id, this.sort);
    this.renderHeaders();
    this.update(this.items);
  }

  renderHeaders() {
    this.columns.forEach((column, index) => {
      const th = this.headers[index];
      const sorted = this.sort.column === column.id;
      if (sorted) th.setAttribute('aria-sort', this.sort.descending ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
      th.querySelector('.arrow').textContent = sorted ? (this.sort.descending ? '▼' : '▲') : '';
    });
  }

  sorted(items) {
    const column = this.columns.find((c) => c.id === this.sort.column);
    const sign = this.sort.descending ? -1 : 1;
    return [...items].sort((a, b) => {
      const [x, y] = [column.value(a), column.value(b)];
      if (x == null || y == null) return (x == null) - (y == null); // blanks last, either way
      return sign * (typeof x === 'string' ? x.localeCompare(y) : x - y);
    });
  }

  /** Shows `items` (the first `limit` once sorted), reusing each key's row. */
  update(items, limit = Infinity, emptyText = this.empty) {
    this.items = items;
    this.shown = this.columns.map((c) => !c.optional || items.some((item) => c.value(item) != null));
    this.headers.forEach((th, i) => (th.hidden = !this.shown[i]));
    const wanted = this.sorted(items).slice(0, limit).map((item) => this.row(item));
    const keep = new Set(wanted);
    for (const [key, tr] of this.rows) {
      if (keep.has(tr)) continue;
      this.rows.delete(key);
      tr.remove();
    }
    if (!wanted.length) {
      this.emptyRow.firstChild.textContent = emptyText;
      wanted.push(this.emptyRow);
    }
    const current = this.body.children;
    if (wanted.length !== current.length || wanted.some((tr, i) => tr !== current[i])) {
      const focused = this.body.contains(document.activeElement) && document.activeElement;
      this.body.replaceChildren(...wanted); // a moved link loses focus: give it back
      if (focused?.isConnected) focused.focus({ preventScroll: true });
    }
  }

  row(item) {
    const key = this.key(item);
    let tr = this.rows.get(key);
    if (!tr) {
      tr = h('tr', {}, this.columns.map((c, i) => h(i ? 'td' : 'th',
        { scope: i ? null : 'row', class: c.numeric && 'num', dataset: { col: c.id } }, c.href && h('a'))));
      this.rows.set(key, tr);
    }
    this.columns.forEach((column, index) => {
      tr.children[index].hidden = !this.shown[index];
      const target = column.href ? tr.children[index].firstChild : tr.children[index];
      const text = column.text ? column.text(item) : String(column.value(item) ?? '—');
      if (target.textContent !== text) target.textContent = text;
      if (column.href && target.getAttribute('href') !== column.href(item)) target.setAttribute('href', column.href(item));
    });
    return tr;
  }
}

/** A table column of numbers: sorted by value, shown formatted. */
const numberColumn = ([id, label, value, format = count]) => ({ id, label, value, numeric: true, text: (x) => format(value(x)) });

// --- Page parts ---------------------------------------------------------------------------------

let flash = null; // a notice for the next page ("queue deleted")

/** The heading, the flash notice and the error banner each page starts with; answers the banner. */
function pageHead(title, ...extra) {
  const banner = messageBox('alert');
  const notice = messageBox();
  if (flash) notice.show(flash, 'ok');
  flash = null;
  view().append(h('div', { class: 'page-head' }, h('h1', { tabindex: -1, text: title }), ...extra), notice, banner);
  return banner;
}

/** A page's task for live.start(): its banner shows the error of the last round, if any. */
const task = (banner, refresh) => ({
  refresh,
  onError: (error) => banner.show(error && `${error.message}${error.status ? ` (HTTP ${error.status})` : ''}`),
});

const section = (title, ...children) => h('section', { class: 'panel', 'aria-label': title }, h('h2', { text: title }), ...children);
const crumb = (href, text) => view().prepend(h('p', { class: 'crumbs' }, h('a', { href, text })));

/** Figures as tiles: `defs` are [id, label, value(data), format]; `update(data)` shows them. */
function tiles(defs) {
  const values = defs.map(() => h('dd', { text: '—' }));
  const el = h('dl', { class: 'tiles' }, defs.map(([id, label], i) =>
    h('div', { class: 'tile', dataset: { tile: id } }, h('dt', { text: label }), values[i])));
  el.update = (data) => defs.forEach(([, , value, format = count], i) => (values[i].textContent = format(value(data))));
  return el;
}

/** A queue's figures, from GET /api/{q}/stats (or GET /queues' depths): tiles and columns. */
const FIGURES = [
  ['ready', 'Ready', (s) => s.ready],
  ['inFlight', 'In flight', (s) => s.inFlight],
  ['delayed', 'Delayed', (s) => s.delayed],
  ['deadLetter', 'Dead letters', (s) => s.deadLetter],
  ['oldest', 'Oldest ready', (s) => s.oldestAgeMs, duration],
  ['enqueued', 'Enqueued/s', (s) => s.ratesPerSecond?.enqueued, rate],
  ['delivered', 'Delivered/s', (s) => s.ratesPerSecond?.delivered, rate],
  ['acked', 'Acked/s', (s) => s.ratesPerSecond?.acked, rate],
];

// --- Overview -----------------------------------------------------------------------------------

let queueFilter = '';

function overviewPage() {
  document.title = 'Skiff console';
  const banner = pageHead('Overview');
  const sums = {};
  const summary = tiles([['queues', 'Queues'], ['ready', 'Ready'], ['inFlight', 'In flight'], ['delayed', 'Delayed'],
    ['deadLetter', 'Dead letters'], ['topics', 'Topics']].map(([id, label]) => [id, label, (data) => data[id]]));
  const queues = new DataTable({
    id: 'queues',
    caption: 'Queues',
    key: (q) => q.name,
    empty: 'No queues yet: a queue exists once a message is posted to /api/{name} or its settings are set.',
    columns: [{ id: 'name', label: 'Queue', value: (q) => q.name, href: (q) => queueHref(q.name) }, ...FIGURES.map(numberColumn)],
  });
  const topics = new DataTable({
    id: 'topics',
    caption: 'Topics',
    key: (t) => t.name,
    empty: 'No topics yet.',
    columns: [{ id: 'name', label: 'Topic', value: (t) => t.name, href: (t) => topicHref(t.name) },
      numberColumn(['subscriptions', 'Subscriptions', (t) => t.subscriptions]), numberColumn(['published', 'Published', (t) => t.published])],
  });
  const filter = h('input', { id: 'queue-filter', type: 'search', value: queueFilter, autocomplete: 'off', spellcheck: 'false' });
  const queuesNote = h('p', { class: 'hint' });
  const topicsNote = messageBox();
  view().append(summary,
    section('Queues', h('div', { class: 'filter' }, h('label', { for: 'queue-filter', text: 'Filter queues' }), filter), queues.element, queuesNote),
    section('Topics', topics.element, topicsNote));

  const stats = new Map(); // name -> stats, kept between rounds: past PER_ROUND queues they refresh in turns
  let cursor = 0;
  let list = [];
  let listedAt = 0;

  function drawQueues() {
    const needle = queueFilter.toLowerCase();
    const items = list.filter((q) => q.name.toLowerCase().includes(needle)).map((q) => ({ ...q, ...stats.get(q.name), name: q.name })); // the exact stats, when read, over the list's
    queues.update(items, MAX_ROWS, needle ? `No queue name contains “${queueFilter}”.` : undefined);
    queuesNote.textContent = [
      items.length > MAX_ROWS && `Showing ${MAX_ROWS} of ${count(items.length)} queues: filter to see the others.`,
      list.length > PER_ROUND && `Dead letters, ages and rates of ${count(list.length)} queues refresh ${PER_ROUND} at a time.`,
    ].filter(Boolean).join(' ');
  }
  filter.addEventListener('input', () => {
    queueFilter = filter.value.trim();
    drawQueues();
  });

  async function refreshQueues(signal) {
    // The list costs the server a read of every queue: with many, it is asked for less often
    // (every 2 s up to 200 queues, then 2 s more per 200, at most every 60 s); the figures of
    // the queues on the page keep refreshing every round.
    const listEvery = Math.min(60000, POLL_MS * Math.max(1, Math.ceil(list.length / 200)));
    if (!list.length || Date.now() - listedAt >= listEvery) {
      list = (await api('/queues', { signal })).queues;
      listedAt = Date.now();
    }
    const names = list.map((q) => q.name);
    cursor = names.length > PER_ROUND ? cursor % names.length : 0;
    const batch = names.concat(names).slice(cursor, cursor + Math.min(PER_ROUND, names.length));
    cursor += PER_ROUND;
    await inBatches(batch, PARALLEL, async (name) => {
      try {
        stats.set(name, await api(queuePath(name, '/stats'), { signal }));
      } catch (error) {
        if (!error.status || error.status === 401) throw error; // unreachable, aborted, signed out
        stats.delete(name); // e.g. deleted meanwhile: blanks
      }
    });
    const present = new Set(names);
    for (const name of stats.keys()) if (!present.has(name)) stats.delete(name);
    sums.queues = list.length;
    for (const field of ['ready', 'inFlight', 'delayed']) sums[field] = list.reduce((sum, q) => sum + q[field], 0);
    sums.deadLetter = list.reduce((sum, q) => sum + (stats.get(q.name)?.deadLetter || 0), 0);
    summary.update(sums);
    drawQueues();
  }

  async function refreshTopics(signal) {
    let names;
    try {
      names = (await api('/api/topics', { signal })).topics;
    } catch (error) {
      if (error.status !== 501) throw error;
      return topicsNote.show(error.message, 'info'); // a backend without topics: nothing to retry
    }
    const details = await inBatches(names.slice(0, PER_ROUND), PARALLEL, (name) => api(subscriptionsPath(name), { signal })
      .then((t) => ({ name, subscriptions: t.subscriptions.length, published: t.published })));
    topics.update(details);
    sums.topics = names.length;
    summary.update(sums);
    topicsNote.show(names.length > PER_ROUND && `Showing the first ${PER_ROUND} of ${count(names.length)} topics.`, 'info');
  }

  live.start(task(banner, async (signal) => {
    // Both halves run; the first failure, if any, is the round's (and backs it off).
    const failed = (await Promise.allSettled([refreshQueues(signal), refreshTopics(signal)])).find((r) => r.reason);
    if (failed) throw failed.reason;
  }));
}

// --- One queue ----------------------------------------------------------------------------------

function queuePage(name) {
  document.title = `${name} · Skiff console`;
  const dlqLink = h('a');
  const dlqLine = h('p', { class: 'sub', hidden: true }, 'Dead letters go to ', dlqLink);
  const banner = pageHead(name, dlqLine);
  crumb('#/', '← All queues');
  const figures = tiles(FIGURES);
  const totals = h('p', { class: 'hint' });
  const history = historyPanel(name);
  const refreshNow = () => live.run();
  // The dead-letter queue's name comes with the settings: the parts that use it wait for it.
  const dlq = { name: null, listeners: [] };
  const settings = settingsPanel(name, (config) => {
    dlq.name = dlqLink.textContent = config.deadLetterQueue;
    dlqLink.href = queueHref(dlq.name);
    dlqLine.hidden = false;
    dlq.listeners.forEach((listener) => listener(dlq.name));
  });
  view().append(figures, totals, history.element, h('div', { class: 'columns' },
    h('div', {}, lookupPanel(name), peekPanel(name, dlq)),
    h('div', {}, redrivePanel(name, dlq, refreshNow), settings, dangerPanel(name, refreshNow))));

  live.start(task(banner, async (signal) => {
    const s = await api(queuePath(name, '/stats'), { signal });
    figures.update(s);
    const t = s.totals;
    totals.textContent = `Totals: ${count(t.enqueued)} enqueued, ${count(t.delivered)} delivered, ${count(t.acked)} acked, ` +
      `${count(t.retried)} retried, ${count(t.deadLettered)} dead-lettered, ${count(t.expired)} expired. Rates are over the last minute.`;
    await history.refresh(signal);
  }));
}

/** The depth and rate charts, from GET /api/{q}/history (at most the last hour's samples). */
function historyPanel(name) {
  const status = messageBox();
  const depth = new LineChart('Depth', 'messages', [['ready', 'Ready'], ['inFlight', 'In flight'], ['delayed', 'Delayed'], ['deadLetter', 'Dead letters']], count);
  const rates = new LineChart('Rates', 'per second', [['enqueued', 'Enqueued/s'], ['delivered', 'Delivered/s'], ['acked', 'Acked/s']], rate);
  const charts = h('div', { class: 'charts', hidden: true }, depth.element, rates.element);
  const span = h('span', { class: 'hint' });
  const element = h('section', { class: 'panel', 'aria-label': 'History' }, h('h2', {}, 'Last hour ', span), status, charts);
  let due = 0;

  async function refresh(signal) {
    if (Date.now() < due) return;
    let history;
    try {
      history = await api(queuePath(name, '/history'), { signal });
    } catch (error) {
      if (!error.status || error.status === 401) throw error;
      due = Date.now() + MAX_BACKOFF_MS; // e.g. a server without history: say so, ask again later
      charts.hidden = true;
      return status.show(`History unavailable: ${error.message}`);
    }
    // A sample comes once per interval: asking more often would fetch the same hour again.
    const every = duration(history.intervalMs);
    due = Date.now() + Math.max(history.intervalMs || 0, POLL_MS) - 250;
    const samples = history.samples || [];
    charts.hidden = !samples.length;
    span.textContent = samples.length ? `(${plural(samples.length, 'sample')}, one every ${every})` : '';
    if (!samples.length) return status.show(`No history yet: the server records a sample every ${every}.`, 'info');
    status.show(null);
    const times = samples.map((s) => s.at);
    // Intervals without a sample (no replica was running) are a gap in the lines, not a slope.
    const gap = 2 * Math.max(history.intervalMs || 0, 1000);
    depth.set(times, ['ready', 'inFlight', 'delayed', 'deadLetter'].map((field) => samples.map((s) => s[field] ?? null)), gap);
    rates.set(times, ['enqueued', 'delivered', 'acked'].map((field) => ratesOf(samples, field)), gap);
  }
  return { element, refresh };
}

/**
 * Per-second rates from running totals: the difference over the time between two samples, at
 * the later one. A total that went down was reset: no rate for that step, a gap in the line.
 */
function ratesOf(samples, field) {
  return samples.map((sample, i) => {
    const before = samples[i - 1];
    // Over the time between the recordings (measuredAt), which fall anywhere in their interval;
    // a server without it gives the intervals' starts.
    const seconds = before && ((sample.measuredAt ?? sample.at) - (before.measuredAt ?? before.at)) / 1000;
    const delta = before && sample[field] - before[field];
    return seconds > 0 && delta >= 0 ? delta / seconds : null;
  });
}

/** One message, as a peek or a lookup answers it. */
function messageCard(m) {
  const rows = [['Id', m.id]];
  if (m.state) rows.push(['State', m.state === 'inFlight' ? 'in flight' : m.state]);
  rows.push(['Enqueued at', m.enqueuedAt], ['Receive count', count(m.receiveCount)], ['Priority', String(m.priority)]);
  if (m.lastError != null) rows.push(['Last error', m.lastError]);
  const dead = m.deadLetter;
  if (dead) {
    rows.push(['Dead-lettered from', `${dead.sourceQueue} after ${plural(dead.receiveCount, 'receive')}`],
      ['Received', `first ${dead.firstReceivedAt}, last ${dead.lastReceivedAt}`]);
    if (dead.lastError != null) rows.push(['Its last error', dead.lastError]);
  }
  const body = m.body === null && m.unreadable != null
    ? h('p', { class: 'msg error', text: `Body unreadable: ${m.unreadable}` })
    : h('pre', { class: 'body', tabindex: 0, 'aria-label': `Body of ${m.id}`, text: JSON.stringify(m.body, null, 2) });
  return h('article', { class: 'message' },
    h('dl', {}, rows.map(([label, value]) => h('div', {}, h('dt', { text: label }), h('dd', { text: value })))), body);
}

/**
 * A labelled text input: [wrapper, input]. Numbers are typed as text too and sent as typed: the
 * server says what is wrong with one (a number input would turn "1x" into "" without a word).
 */
function field(label, props, hint) {
  const id = nextId('f');
  const input = h('input', { id, type: 'text', 'aria-describedby': `${id}-hint`, autocomplete: 'off', spellcheck: 'false', ...props });
  return [h('div', { class: 'field' }, h('label', { for: id, text: label }), input, h('small', { id: `${id}-hint`, class: 'hint', text: hint })), input];
}

/** Runs `work` with the enabled buttons of `form` disabled meanwhile; its error goes to `box`. */
async function busy(form, box, work) {
  const buttons = [...form.querySelectorAll('button:enabled')];
  buttons.forEach((b) => (b.disabled = true));
  try {
    await work();
  } catch (error) {
    if (error.status !== 401) box.show(error.message); // a 401 brought the login form up
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

/** A form of `fields` and `buttons` whose submit runs `work(submitter, box)`: [form, box]. */
function actionForm(fields, buttons, work, inline = true) {
  const box = messageBox('alert');
  const form = h('form', { novalidate: true, class: inline && 'inline' }, fields, h('div', { class: 'actions' }, buttons));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    box.show(null);
    busy(form, box, () => work(event.submitter, box));
  });
  return [form, box];
}

const button = (text, props) => h('button', { type: 'submit', text, ...props });
const numeric = { inputmode: 'numeric' };

function lookupPanel(name) {
  const [idField, idInput] = field('Message id', {}, 'Ready, delayed or in flight');
  const result = h('div', { 'aria-live': 'polite' });
  const [form, box] = actionForm(idField, button('Find', { class: 'primary' }), async () => {
    result.replaceChildren();
    const id = idInput.value.trim();
    if (!id) return box.show('Enter a message id.');
    if (!MESSAGE_ID.test(id)) return box.show(`“${id}” is not a message id: ids are 26 letters and digits.`);
    result.append(messageCard(await api(queuePath(name, `/messages/${segment(id)}`), { lossless: true })));
  });
  return section('Find a message', form, box, result);
}

function peekPanel(name, dlq) {
  const [countField, countInput] = field('Messages', { ...numeric, value: '10' }, '1 to 100');
  const dead = button('Peek dead letters', { disabled: true });
  dlq.listeners.push((dlqName) => {
    dead.disabled = false;
    dead.textContent = `Peek ${dlqName}`;
  });
  const results = h('div', { 'aria-live': 'polite' });
  const [form, box] = actionForm(countField, [button('Peek ready messages', { class: 'primary' }), dead], async (submitter) => {
    const source = submitter === dead ? dlq.name : name;
    results.replaceChildren();
    const path = queuePath(source, `/messages?peek=${encodeURIComponent(countInput.value.trim())}`);
    const { messages } = await api(path, { lossless: true });
    results.append(h('p', { class: 'hint', text: messages.length
      ? `The next ${plural(messages.length, 'ready message')} of ${source}, in receive order.` : `${source} has no ready message.` }),
    ...messages.map(messageCard));
  });
  return section('Peek', h('p', { class: 'hint', text: 'Reads the next ready messages without receiving them: no receive is counted, no visibility timeout starts.' }),
    form, box, results);
}

function redrivePanel(name, dlq, refreshNow) {
  const [maxField, maxInput] = field('At most', { ...numeric, placeholder: 'all' }, 'messages; empty: all there are now');
  const [rateField, rateInput] = field('Rate', { ...numeric, placeholder: 'unlimited' }, 'per second; empty: as fast as possible');
  const redrive = button('Redrive', { class: 'primary', disabled: true });
  const intro = h('p', { class: 'hint', text: 'Moves dead letters back to the tail of this queue.' });
  dlq.listeners.push((dlqName) => {
    redrive.disabled = false;
    intro.textContent = `Moves messages from ${dlqName} back to the tail of ${name}.`;
  });
  const [form, box] = actionForm([maxField, rateField], redrive, async () => {
    const query = new URLSearchParams();
    if (maxInput.value.trim()) query.set('max', maxInput.value.trim());
    if (rateInput.value.trim()) query.set('rate', rateInput.value.trim());
    box.show('Redriving…', 'info');
    const { moved } = await api(queuePath(name, `/redrive?${query}`), { method: 'POST' });
    box.show(`Moved ${plural(moved, 'message')} back to ${name}.`, 'ok');
    refreshNow();
  });
  return section('Redrive dead letters', intro, form, box);
}

/** The settings, one field each: [key (a.b: nested), label, hint, in milliseconds]. */
const SETTINGS = [
  ['visibilityTimeoutMs', 'Visibility timeout (ms)', '100 ms to 12 h; empty: 30000', true],
  ['maxReceiveCount', 'Max receive count', '1 to 1000; empty: never dead-letter'],
  ['deadLetterQueue', 'Dead-letter queue', 'a queue name; empty: {queue}-dlq'],
  ['retryBackoff.baseMs', 'Retry backoff base (ms)', '0 to 12 h; empty: 1000', true],
  ['retryBackoff.capMs', 'Retry backoff cap (ms)', '0 to 12 h; empty: 300000', true],
  ['retentionMs', 'Retention (ms)', '1 min to 14 days; empty: 4 days', true],
  ['delayMs', 'Delay (ms)', 'up to the retention; empty: 0', true],
  ['maxDepth', 'Max depth', '1 to 100000000; empty: unbounded'],
  ['dedupWindowMs', 'Dedup window (ms)', '1 ms to 7 days; empty: 5 min', true],
  ['partitions', 'Partitions', '1 to 64, can only grow; empty: keep'],
  ['maxMessageBytes', 'Max message bytes', '1 B to 32 MiB, within the service\'s limit; empty: the service\'s'],
  ['offloadThresholdBytes', 'Offload threshold bytes', 'with a payload store, up to MAX_MESSAGE_BYTES; empty: the service\'s'],
];

/** GET /api/{q}/config into a form; Save PUTs the whole edited object (a PUT replaces). */
function settingsPanel(name, onLoad) {
  const inputs = {};
  const fields = SETTINGS.map(([key, label, hint, ms]) => {
    const [wrapper, input] = field(label, key === 'deadLetterQueue' ? {} : numeric, hint);
    inputs[key] = input;
    if (ms) { // milliseconds are hard to read: the duration goes beside the label
      const human = h('span', { class: 'human', 'aria-hidden': 'true' });
      input.say = () => (human.textContent = /^\d+$/.test(input.value.trim()) ? `= ${duration(Number(input.value))}` : '');
      input.addEventListener('input', input.say);
      wrapper.firstChild.append(' ', human);
    }
    return wrapper;
  });
  const save = button('Save settings', { class: 'primary', disabled: true });
  const revert = h('button', { type: 'button', text: 'Revert', disabled: true });
  let loaded = null;
  function fill(config) {
    loaded = config;
    for (const [key] of SETTINGS) {
      const value = key.split('.').reduce((object, part) => object?.[part], config);
      inputs[key].value = value ?? '';
      inputs[key].say?.();
    }
    save.disabled = revert.disabled = false;
    onLoad(config);
  }
  /** '' is null (the default), digits a number, anything else goes as typed for the server to refuse. */
  function read(key) {
    const raw = inputs[key].value.trim();
    if (raw === '' || key === 'deadLetterQueue') return raw || null;
    return /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : raw;
  }
  const [form, box] = actionForm(h('div', { class: 'fields' }, fields), [save, revert], async () => {
    const settings = {};
    for (const [key] of SETTINGS) {
      const [outer, inner] = key.split('.');
      if (inner) (settings[outer] = settings[outer] || {})[inner] = read(key);
      else settings[key] = read(key);
    }
    fill(await api(queuePath(name, '/config'), { method: 'PUT', body: settings }));
    box.show('Saved: these settings are in force.', 'ok');
  }, false);
  form.append(box);
  revert.addEventListener('click', () => {
    box.show(null);
    fill(loaded);
  });
  api(queuePath(name, '/config')).then(fill, (error) => box.show(`The settings could not be read: ${error.message}`));
  return section('Settings', form);
}

function dangerPanel(name, refreshNow) {
  const box = messageBox('alert');
  /** A button that asks for the queue's name in the dialog, then runs `work`. */
  const dangerous = (label, action, text, work) => h('button', { type: 'button', class: 'danger', text: label, onclick: async (event) => {
    box.show(null);
    if (await confirmByName({ title: `${action} ${name}?`, action, name, text })) busy(event.target.parentNode, box, work);
  } });
  return section('Danger zone', h('div', { class: 'actions' },
    dangerous('Purge…', 'Purge', 'Every message of the queue is deleted: ready, delayed and in flight. Its settings and totals stay.', async () => {
      const { purged } = await api(queuePath(name, '/purge'), { method: 'POST' });
      box.show(`Purged ${plural(purged, 'message')}.`, 'ok');
      refreshNow();
    }),
    dangerous('Delete queue…', 'Delete', 'The queue goes with its messages, settings, counters and idempotency keys. Its dead-letter queue stays.', async () => {
      await api(queuePath(name), { method: 'DELETE' });
      flash = `Queue ${name} deleted.`;
      location.hash = '#/';
    })), box);
}

// --- Topics -------------------------------------------------------------------------------------

function topicsPage(only) {
  document.title = `${only || 'Topics'} · Skiff console`;
  const banner = pageHead(only ? `Topic ${only}` : 'Topics');
  if (only) crumb('#/topics', '← All topics');
  const empty = h('p', { class: 'hint', hidden: true, text: 'No topics yet: a topic exists once it has a subscription (PUT /api/topics/{topic}/subscriptions/{name}).' });
  const list = h('div');
  view().append(empty, list);
  const shown = new Map(); // topic -> {element, table, published}

  function topicSection(topic) {
    const published = h('p', { class: 'hint' });
    const table = new DataTable({
      id: 'subscriptions',
      caption: `Subscriptions of ${topic}`,
      key: (s) => s.name,
      empty: 'No subscriptions.',
      columns: [
        { id: 'name', label: 'Subscription', value: (s) => s.name },
        { id: 'queue', label: 'Queue', value: (s) => s.queue, href: (s) => queueHref(s.queue) },
        { id: 'push', label: 'Push to', value: (s) => s.push?.url, optional: true },
        { id: 'filter', label: 'Filter', value: (s) => (s.filter == null ? 'every message' : JSON.stringify(s.filter)) },
        // A push subscription also counts what its queue took (queued) and what it gave up on.
        ...['matched', 'filteredOut', 'delivered', 'dropped', 'queued', 'failed'].map((c) => ({
          ...numberColumn([c, c === 'filteredOut' ? 'Filtered out' : c[0].toUpperCase() + c.slice(1), (s) => s.counters?.[c]]),
          optional: c === 'queued' || c === 'failed',
        })),
      ],
    });
    const heading = h('h2', {}, only ? 'Subscriptions' : h('a', { href: topicHref(topic), text: topic }));
    return { element: h('section', { class: 'panel', 'aria-label': `Topic ${topic}` }, heading, published, table.element), table, published };
  }

  live.start(task(banner, async (signal) => {
    const names = only ? [only] : (await api('/api/topics', { signal })).topics.slice(0, PER_ROUND);
    const details = await inBatches(names, PARALLEL, (topic) => api(subscriptionsPath(topic), { signal }));
    for (const [topic, s] of shown) {
      if (names.includes(topic)) continue;
      shown.delete(topic);
      s.element.remove();
    }
    details.forEach((detail, index) => {
      let s = shown.get(detail.topic);
      if (!s) shown.set(detail.topic, (s = topicSection(detail.topic)));
      s.published.textContent = `${plural(detail.published, 'message')} published, ${plural(detail.subscriptions.length, 'subscription')}.`;
      s.table.update(detail.subscriptions);
      if (list.children[index] !== s.element) list.insertBefore(s.element, list.children[index] || null);
    });
    empty.hidden = names.length > 0;
  }));
}

function notFoundPage(text) {
  document.title = 'Not found · Skiff console';
  pageHead('Not found');
  view().append(h('p', { text }), h('p', {}, h('a', { href: '#/', text: 'Back to the overview' })));
}

// --- Charts: SVG line charts built with the DOM, at the width of their box ----------------------

const charts = new Set(); // drawn charts, redrawn when the window's width changes

class LineChart {
  /** series: [[key, label]]; format: how a value reads in the legend and the description. */
  constructor(title, unit, series, format) {
    Object.assign(this, { title, unit, series, format, times: [], values: [] });
    this.plot = h('div');
    this.readings = series.map(() => h('b'));
    this.when = h('span');
    this.element = h('figure', { class: 'chart' },
      h('figcaption', {}, h('strong', { text: title }), ` (${unit}) `, this.when), this.plot,
      h('ul', { class: 'legend' }, series.map(([key, label], i) =>
        h('li', {}, h('span', { class: `swatch ${key}`, 'aria-hidden': 'true' }), `${label} `, this.readings[i]))));
    charts.add(this);
  }

  /** values: a series per legend entry, a value (or null) per time; a longer `gap` breaks the lines. */
  set(times, values, gap) {
    Object.assign(this, { times, values, gap });
    this.draw();
  }

  draw() {
    if (!this.element.isConnected) return charts.delete(this);
    const { times, values } = this;
    if (!times.length) return;
    const [width, height, left, right, top, bottom] = [Math.max(240, Math.round(this.plot.clientWidth || 480)), 200, 46, 12, 12, 24];
    const t1 = times[times.length - 1];
    const t0 = times[0] < t1 ? times[0] : t1 - 60000; // one sample: a minute before it
    const ticks = niceTicks(Math.max(0, ...values.flat().filter((v) => v != null)), this.format === count);
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const y = (v) => height - bottom - (v / ticks[ticks.length - 1]) * (height - top - bottom);
    const [titleId, descId] = [nextId('chart'), nextId('chart')];
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-labelledby': `${titleId} ${descId}` },
      svg('title', { id: titleId }, `${this.title} (${this.unit})`), svg('desc', { id: descId }, this.describe()));
    // Axes: horizontal grid lines with their values; times below (none too near an edge to fit).
    for (const v of ticks) {
      root.append(svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }),
        svg('text', { class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, integer.format(v)));
    }
    const step = timeStep(t1 - t0, (width - left - right) / 80);
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      root.append(svg('line', { class: 'axis', x1: x(t), x2: x(t), y1: height - bottom, y2: height - bottom + 4 }));
      if (x(t) > left + 20 && x(t) < width - 28) {
        root.append(svg('text', { class: 'tick', x: x(t), y: height - 6, 'text-anchor': 'middle' }, clock(t, step < 60000)));
      }
    }
    root.append(svg('line', { class: 'axis', x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }));
    // A path per series: a null or a gap in time breaks the line, and a point alone gets a dot.
    values.forEach((series, i) => {
      const key = this.series[i][0];
      const joined = (j) => series[j - 1] != null && series[j] != null && times[j] - times[j - 1] <= this.gap;
      let d = '';
      series.forEach((v, j) => {
        if (v == null) return;
        d += `${joined(j) ? 'L' : 'M'}${x(times[j]).toFixed(1)} ${y(v).toFixed(1)}`;
        if (!joined(j) && !joined(j + 1)) root.append(svg('circle', { class: `dot ${key}`, cx: x(times[j]), cy: y(v), r: 2.5 }));
      });
      if (d) root.append(svg('path', { class: `series ${key}`, d }));
    });
    // Under the pointer, a guide line; the legend reads the values there.
    const guide = svg('line', { class: 'guide', y1: top, y2: height - bottom, visibility: 'hidden' });
    root.append(guide);
    root.addEventListener('pointermove', (event) => {
      const box = root.getBoundingClientRect();
      const at = t0 + (((event.clientX - box.left) * width) / box.width - left) / (width - left - right) * (t1 - t0);
      const nearest = times.reduce((best, t, j) => (Math.abs(t - at) < Math.abs(times[best] - at) ? j : best), 0);
      for (const [name, value] of [['x1', x(times[nearest])], ['x2', x(times[nearest])], ['visibility', 'visible']]) guide.setAttribute(name, value);
      this.read(nearest);
    });
    root.addEventListener('pointerleave', () => {
      guide.setAttribute('visibility', 'hidden');
      this.read(times.length - 1);
    });
    this.plot.replaceChildren(root);
    this.read(times.length - 1);
  }

  /** The legend shows the values of sample `index`. */
  read(index) {
    this.when.textContent = `at ${clock(this.times[index], true)}`;
    this.values.forEach((series, i) => (this.readings[i].textContent = this.format(series[index])));
  }

  /** The text alternative: the time span, and each series' latest value and peak. */
  describe() {
    const { times, values } = this;
    const parts = values.map((series, i) => {
      const known = series.filter((v) => v != null);
      const label = this.series[i][1];
      return known.length ? `${label}: now ${this.format(known[known.length - 1])}, peak ${this.format(Math.max(...known))}` : `${label}: no data`;
    });
    return `From ${clock(times[0], true)} to ${clock(times[times.length - 1], true)}. ${parts.join('; ')}.`;
  }
}

/** 0 and round steps (1, 2 or 5 x 10^n; whole ones if `whole`) up to `max` or just past it. */
function niceTicks(max, whole) {
  if (!(max > 0)) return [0, 1];
  const magnitude = 10 ** Math.floor(Math.log10(max / 4));
  let step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= max / 4);
  if (whole) step = Math.max(1, Math.round(step));
  const ticks = [0];
  while (ticks[ticks.length - 1] < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

/** A round time step giving at most `slots` labels over `span` ms. */
function timeStep(span, slots) {
  return [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000).find((s) => span / s <= Math.max(1, slots)) || 3600000;
}

let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => charts.forEach((chart) => chart.draw()), 150);
});

// --- The confirmation dialog: the queue's name must be typed; Escape or Cancel changes nothing --

function confirmByName({ title, text, action, name }) {
  const dialog = $('confirm');
  const input = $('confirm-input');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-name').textContent = dialog.dataset.name = name;
  $('confirm-ok').textContent = action;
  $('confirm-ok').disabled = true;
  dialog.returnValue = input.value = '';
  const opener = document.activeElement;
  dialog.showModal();
  input.focus();
  return new Promise((resolve) => dialog.addEventListener('close', () => {
    resolve(dialog.returnValue === 'ok' && input.value === name);
    if (opener?.isConnected) opener.focus();
  }, { once: true }));
}

function closeDialog() {
  if ($('confirm').open) $('confirm').close('');
}

// --- Routing ------------------------------------------------------------------------------------

/** Shows the page of location.hash; `moveFocus` (a link was followed) focuses its heading. */
function route(moveFocus) {
  if (auth.locked) return;
  live.stop();
  closeDialog();
  view().replaceChildren();
  $('sign-out').hidden = !auth.key();
  const path = location.hash.slice(1) || '/';
  const [, page, param, extra] = path.split('/');
  let name = null;
  try {
    name = param == null ? null : decodeURIComponent(param);
  } catch {
    name = param; // a malformed escape: not a name
  }
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (page === '' && name == null) overviewPage();
  else if (page === 'queues' && QUEUE_NAME.test(name) && name !== 'topics' && extra == null) queuePage(name);
  else if (page === 'queues' && name != null && extra == null) notFoundPage(`“${name}” is not a queue name: 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'.`);
  else if (page === 'topics' && extra == null && (!name || QUEUE_NAME.test(name))) topicsPage(name || null);
  else if (page === 'topics' && extra == null) notFoundPage(`“${name}” is not a topic name: 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'.`);
  else notFoundPage(`There is no page at ${path}.`);
  if (moveFocus) view().querySelector('h1').focus();
}

messageBox('alert', $('login-error'));
$('login-form').addEventListener('submit', signIn);
$('sign-out').addEventListener('click', () => {
  auth.clear();
  auth.lock(true, 'Signed out.', 'ok');
});
$('confirm-input').addEventListener('input', (event) => {
  $('confirm-ok').disabled = event.target.value !== $('confirm').dataset.name;
});
$('confirm-cancel').addEventListener('click', closeDialog);
// The skip link's #view is not a route: it focuses the content instead of changing the hash.
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  $(auth.locked ? 'api-key' : 'view').focus();
});
window.addEventListener('hashchange', () => route(true));
route(false);
