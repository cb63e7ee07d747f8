// The Ledgix Vault reviewer page (GET /review). Plain JavaScript, no framework, no build step.
//
// Security rules this file keeps (docs/security.md, W1):
// - Everything a pending request shows was sent by the agent and is untrusted. It reaches the page through
//   textContent (and element attributes set as plain values) only: never through an HTML-parsing sink (the
//   inner/outer HTML properties, adjacent-HTML insertion, document writes) or string-built markup.
// - The reviewer's API key lives in sessionStorage (this tab only) and in request headers; never in
//   persistent (local) storage, a cookie or a URL. Signing out removes it.
// - The page is served with a Content-Security-Policy without inline script or style; this file and
//   review.css are the only code and style it runs.
'use strict';

(() => {
  const KEY_ITEM = 'ledgix.review.apiKey';
  const NAME_ITEM = 'ledgix.review.reviewerName';
  const REFRESH_MS = 4000;
  // The decided history reads up to 500 ledger events: every HISTORY_EVERY refreshes, and after each decision.
  const HISTORY_EVERY = 4;
  const HISTORY_CATEGORIES = new Set(['review.decision', 'review.expired', 'review.cancelled_by_agent']);
  // The API lives beside the page: /review → '' (or '/stage' behind a path prefix).
  const BASE = location.pathname.replace(/\/review\/?$/, '');

  const $ = (id) => document.getElementById(id);

  /** A new element with an optional class and text (always as text, never as markup). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const state = {
    key: null,
    timer: null,
    ticks: 0,
    refreshing: false,
    cards: new Map(), // request_id -> card
    ledger: [],
    selected: null,
    selectedSealed: false,
  };

  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  /** One call to the vault with the reviewer's key; the JSON answer, or an ApiError from the error shape. */
  async function api(method, path, body, extraHeaders) {
    const headers = { 'X-Vault-API-Key': state.key, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    Object.assign(headers, extraHeaders || {});
    let response;
    try {
      response = await fetch(BASE + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new ApiError(0, 'network_error', 'the vault could not be reached (' + e.message + ')', '');
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = data && typeof data === 'object' && data.error ? data.error : {};
      throw new ApiError(
        response.status,
        typeof error.code === 'string' ? error.code : 'http_' + response.status,
        typeof error.message === 'string' ? error.message : response.statusText || 'request failed',
        typeof error.request_id === 'string' ? error.request_id : response.headers.get('X-Request-ID') || '',
      );
    }
    return data;
  }

  function describe(error) {
    if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
    if (error.status === 0) return error.message;
    let text = error.message + ' (HTTP ' + error.status + ' ' + error.code;
    if (error.requestId) text += ', request ' + error.requestId;
    return text + ')';
  }

  function show(node, text) {
    node.textContent = text || '';
    node.hidden = !text;
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return String(iso || '');
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function pretty(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch (_) {
      return String(value);
    }
  }

  function newIdempotencyKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return 'review-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // --- signing in and out -----------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const input = $('api-key');
    const key = input.value.trim();
    show($('sign-in-error'), '');
    if (!key) return;
    $('sign-in-button').disabled = true;
    state.key = key;
    try {
      await api('GET', '/reviews?status=pending&limit=1');
    } catch (e) {
      state.key = null;
      let why = describe(e);
      if (e.status === 401) why = 'This API key was refused: ' + why;
      else if (e.status === 403) why = 'This API key may not review requests (it needs the reviewer role): ' + why;
      show($('sign-in-error'), why);
      return;
    } finally {
      $('sign-in-button').disabled = false;
    }
    input.value = '';
    sessionStorage.setItem(KEY_ITEM, key);
    enterApp();
  }

  function enterApp() {
    $('sign-in').hidden = true;
    $('app').hidden = false;
    $('session').hidden = false;
    $('reviewer-name').value = sessionStorage.getItem(NAME_ITEM) || '';
    state.ticks = 0;
    refresh(true);
    clearInterval(state.timer);
    state.timer = setInterval(tick, REFRESH_MS);
  }

  function signOut(message) {
    clearInterval(state.timer);
    state.timer = null;
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(NAME_ITEM);
    state.key = null;
    state.ledger = [];
    state.selected = null;
    for (const card of state.cards.values()) card.root.remove();
    state.cards.clear();
    $('history-rows').replaceChildren();
    $('receipt').hidden = true;
    $('reviewer-name').value = '';
    show($('app-error'), '');
    show($('notice'), '');
    $('app').hidden = true;
    $('session').hidden = true;
    $('sign-in').hidden = false;
    show($('sign-in-error'), message || '');
    $('api-key').focus();
  }

  /** A 401 mid-session (the key was revoked) ends the session; anything else is shown where it happened. */
  function failed(error, where) {
    if (error instanceof ApiError && error.status === 401) {
      signOut('Signed out: the vault no longer accepts this key (' + describe(error) + ').');
      return;
    }
    show(where, describe(error));
  }

  // --- refreshing -------------------------------------------------------------------------------------------

  function tick() {
    if (document.hidden || !state.key) return;
    state.ticks += 1;
    refresh(state.ticks % HISTORY_EVERY === 0);
  }

  async function refresh(withHistory) {
    if (state.refreshing || !state.key) return;
    state.refreshing = true;
    try {
      const data = await api('GET', '/reviews?status=pending&limit=500');
      renderQueue(Array.isArray(data && data.reviews) ? data.reviews : []);
      if (withHistory) await refreshLedger();
      if (state.selected && !state.selectedSealed) await showReceipt(state.selected);
      $('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString();
      show($('app-error'), '');
    } catch (e) {
      failed(e, $('app-error'));
    } finally {
      state.refreshing = false;
    }
  }

  async function refreshLedger() {
    const data = await api('GET', '/ledger?limit=500');
    state.ledger = Array.isArray(data && data.entries) ? data.entries : [];
    renderHistory();
  }

  // --- the pending queue ------------------------------------------------------------------------------------

  function renderQueue(reviews) {
    const queue = $('queue');
    const seen = new Set();
    for (const review of reviews) {
      if (!review || typeof review.request_id !== 'string') continue;
      seen.add(review.request_id);
      let card = state.cards.get(review.request_id);
      if (!card) {
        card = makeCard(review);
        state.cards.set(review.request_id, card);
        queue.appendChild(card.root); // oldest first: a new request is the newest
      }
      card.age.textContent = ago(review.created_at);
    }
    for (const [id, card] of state.cards) {
      if (!seen.has(id) && !card.busy) {
        card.root.remove();
        state.cards.delete(id);
      }
    }
    $('pending-count').textContent = String(state.cards.size);
    $('queue-empty').hidden = state.cards.size > 0;
    markSelected();
  }

  function makeCard(review) {
    const root = $('review-card').content.firstElementChild.cloneNode(true);
    const part = (selector) => root.querySelector(selector);
    const card = {
      id: review.request_id,
      root,
      age: part('.age'),
      reason: part('.decision-reason'),
      error: part('.decision-error'),
      approve: part('.approve'),
      deny: part('.deny'),
      busy: false,
      idempotency: null,
    };
    root.dataset.requestId = review.request_id;
    part('.tool').textContent = review.tool_name;
    card.age.title = String(review.created_at || '');
    part('.reason').textContent = review.reason || '—';
    part('.reason-code').textContent = review.reason_code || '—';
    const policy = part('.policy');
    policy.textContent = review.policy_id || '—';
    policy.title = review.policy_version_id ? 'version ' + review.policy_version_id : '';
    part('.confidence').textContent = review.confidence_bucket || '—';
    part('.agent').textContent = [review.agent_id, review.session_id].filter(Boolean).join(' · ') || '—';
    part('.request-id').textContent = review.request_id;
    part('.args').textContent = pretty(review.tool_args);
    const context = review.context;
    if (context && typeof context === 'object' && Object.keys(context).length > 0) {
      part('.context').textContent = pretty(context);
      part('.context-block').hidden = false;
    }
    card.approve.addEventListener('click', () => decide(card, true));
    card.deny.addEventListener('click', () => decide(card, false));
    part('.decide').addEventListener('submit', (e) => e.preventDefault());
    part('.show-receipt').addEventListener('click', () => select(review.request_id));
    return card;
  }

  function setBusy(card, busy) {
    card.busy = busy;
    card.approve.disabled = busy;
    card.deny.disabled = busy;
    card.root.classList.toggle('busy', busy);
  }

  async function decide(card, approved) {
    const name = $('reviewer-name').value.trim();
    const body = { approved, review_reason: card.reason.value.trim(), reviewer_name: name || null };
    // A retry of the same decision (e.g. after a network error) reuses its Idempotency-Key, so it is made once.
    const text = JSON.stringify(body);
    if (!card.idempotency || card.idempotency.body !== text) {
      card.idempotency = { body: text, key: newIdempotencyKey() };
    }
    show(card.error, '');
    setBusy(card, true);
    try {
      const answer = await api('POST', '/reviews/' + encodeURIComponent(card.id) + '/decision', body, {
        'Idempotency-Key': card.idempotency.key,
      });
      card.root.remove();
      state.cards.delete(card.id);
      $('pending-count').textContent = String(state.cards.size);
      $('queue-empty').hidden = state.cards.size > 0;
      const status = answer && answer.status ? answer.status : approved ? 'approved' : 'denied';
      show($('notice'), (approved ? 'Approved' : 'Denied') + ' request ' + card.id + ' (status ' + status + ').');
      try {
        await refreshLedger();
        if (state.selected === card.id) await showReceipt(card.id);
      } catch (e) {
        failed(e, $('app-error'));
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        failed(e, card.error);
      } else {
        let why = describe(e);
        if (e.status === 409) why = 'Already decided or no longer pending: ' + why;
        else if (e.status === 403) why = 'Not allowed: ' + why;
        show(card.error, why);
      }
    } finally {
      setBusy(card, false);
    }
  }

  // --- the decided history ----------------------------------------------------------------------------------

  function outcome(event) {
    if (event.action_category === 'review.expired') return 'expired';
    if (event.action_category === 'review.cancelled_by_agent') return 'withdrawn';
    return event.decision_status === 'approved' || event.approved === true ? 'approved' : 'denied';
  }

  const OUTCOME_TEXT = {
    approved: 'approved',
    denied: 'denied',
    expired: 'expired (denied)',
    withdrawn: 'withdrawn by the agent',
  };

  function renderHistory() {
    const rows = state.ledger.filter((e) => e && HISTORY_CATEGORIES.has(e.action_category)).reverse();
    const body = $('history-rows');
    body.replaceChildren();
    for (const event of rows) {
      const row = el('tr');
      row.dataset.requestId = String(event.request_id);
      const when = el('td', null, ago(event.accepted_at));
      when.title = String(event.accepted_at || '');
      const request = el('td');
      request.appendChild(el('code', null, event.request_id));
      const tool = el('td');
      tool.appendChild(el('code', null, event.tool_name));
      const kind = outcome(event);
      const result = el('td', 'outcome-' + kind, OUTCOME_TEXT[kind]);
      const meta = event.action_metadata && typeof event.action_metadata === 'object' ? event.action_metadata : {};
      const who = meta.reviewer_name || (meta.reviewer_key_id ? 'key ' + meta.reviewer_key_id : '—');
      row.append(when, request, tool, result, el('td', null, who), el('td', null, event.reason || ''));
      row.addEventListener('click', () => select(event.request_id));
      body.appendChild(row);
    }
    $('history').hidden = rows.length === 0;
    $('history-empty').hidden = rows.length > 0;
    markSelected();
  }

  // --- the selected request's receipt and inclusion proof ---------------------------------------------------

  function markSelected() {
    for (const card of state.cards.values()) card.root.classList.toggle('selected', card.id === state.selected);
    for (const row of $('history-rows').children) {
      row.classList.toggle('selected', row.dataset.requestId === state.selected);
    }
  }

  function select(requestId) {
    state.selected = requestId;
    state.selectedSealed = false;
    $('receipt').hidden = false;
    $('receipt-request').textContent = requestId;
    $('receipt-proof').textContent = 'Checking the ledger…';
    $('receipt-proof').className = 'proof';
    $('receipt-events').replaceChildren();
    markSelected();
    $('receipt').scrollIntoView({ block: 'nearest' });
    showReceipt(requestId).catch((e) => failed(e, $('app-error')));
  }

  function closeReceipt() {
    state.selected = null;
    $('receipt').hidden = true;
    markSelected();
  }

  async function showReceipt(requestId) {
    let proof = null;
    let proofError = null;
    try {
      proof = await api('GET', '/ledger/proof/inclusion?request_id=' + encodeURIComponent(requestId));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) throw e;
      proofError = e;
    }
    let events = state.ledger.filter((e) => e && e.request_id === requestId);
    // Sealed since the ledger was last read: read it again so the events show their checkpoint.
    const stale = proof && !events.some((e) => e.event_hash === proof.event_hash && e.checkpoint_id != null);
    if (events.length === 0 || stale) {
      await refreshLedger();
      events = state.ledger.filter((e) => e && e.request_id === requestId);
    }
    if (state.selected !== requestId) return;
    renderEvents(events);
    const line = $('receipt-proof');
    if (proof) {
      const event = events.find((e) => e.event_hash === proof.event_hash);
      const first = event && event.checkpoint_id != null ? event.checkpoint_id : proof.checkpoint.checkpoint_id;
      const verified = await verifyInclusion(proof);
      if (state.selected !== requestId) return;
      let text = 'Sealed in checkpoint ' + first + ': leaf ' + proof.leaf_index + ' of the tenant\'s Merkle tree';
      if (verified === true) {
        text += '; its inclusion proof checks out in this browser against checkpoint ' +
          proof.checkpoint.checkpoint_id + ' (tree size ' + proof.tree_size + ', root ' + proof.checkpoint.root_hash + ').';
      } else if (verified === false) {
        text += '; but its inclusion proof does NOT check out against checkpoint ' + proof.checkpoint.checkpoint_id + '.';
      } else {
        text += '; inclusion proof received (this page checks it only in a secure context: https or localhost).';
      }
      line.textContent = text;
      line.className = 'proof ' + (verified === false ? 'failed' : 'sealed');
      state.selectedSealed = verified !== false;
    } else if (proofError instanceof ApiError && proofError.status === 409) {
      line.textContent = 'Waiting for the next anchor round: not sealed into a checkpoint yet.';
      line.className = 'proof waiting';
    } else if (proofError instanceof ApiError && proofError.status === 404) {
      line.textContent = 'No ledger event for this request yet.';
      line.className = 'proof waiting';
    } else {
      line.textContent = 'Inclusion proof unavailable: ' + describe(proofError);
      line.className = 'proof failed';
    }
  }

  function renderEvents(events) {
    const list = $('receipt-events');
    list.replaceChildren();
    if (events.length === 0) {
      list.appendChild(el('p', 'muted', 'Not among the newest 500 ledger events.'));
      return;
    }
    for (const event of events) {
      const box = el('div', 'event');
      box.appendChild(el('h3', null, event.action_category + ' · seq ' + event.seq + ' · ' + event.accepted_at));
      const facts = el('dl', 'facts');
      const fact = (term, value, asCode) => {
        facts.appendChild(el('dt', null, term));
        const dd = el('dd');
        if (asCode) dd.appendChild(el('code', null, value));
        else dd.textContent = value;
        facts.appendChild(dd);
      };
      fact('Event hash', event.event_hash, true);
      fact('Leaf hash', event.leaf_hash, true);
      fact('Receipt key id', event.receipt_key_id || '—', true);
      fact('Receipt', (event.receipt_algorithm || 'Ed25519') + ' signature (verify offline: ledgix verify bundle)', false);
      fact('Leaf index', event.leaf_index == null ? 'not sealed yet' : String(event.leaf_index), false);
      fact('Checkpoint', event.checkpoint_id == null ? 'not sealed yet' : String(event.checkpoint_id), false);
      fact('Outcome', event.decision_status || '—', false);
      box.appendChild(facts);
      list.appendChild(box);
    }
  }

  // RFC 6962 / RFC 9162 §2.1.3.2: walk the audit path from the leaf to the checkpoint's root. true, false, or null
  // where WebCrypto is unavailable (plain http on another host than localhost).
  async function verifyInclusion(proof) {
    if (!(window.crypto && crypto.subtle)) return null;
    try {
      const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      const hex = (s) => {
        if (typeof s !== 'string' || !/^([0-9a-f]{2})+$/i.test(s)) throw new Error('not hex');
        return Uint8Array.from(s.match(/../g), (h) => parseInt(h, 16));
      };
      const join = (...parts) => {
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) {
          out.set(p, at);
          at += p.length;
        }
        return out;
      };
      const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
      const node = (left, right) => sha256(join(Uint8Array.of(1), left, right));
      const leaf = hex(proof.leaf_hash);
      if (!same(await sha256(join(Uint8Array.of(0), hex(proof.event_hash))), leaf)) return false;
      if (proof.tree_size !== proof.checkpoint.tree_size) return false;
      let fn = BigInt(proof.leaf_index);
      let sn = BigInt(proof.tree_size) - 1n;
      if (fn > sn) return false;
      let r = leaf;
      for (const step of proof.path || []) {
        const p = hex(step);
        if (sn === 0n) return false;
        if ((fn & 1n) === 1n || fn === sn) {
          r = await node(p, r);
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        } else {
          r = await node(r, p);
        }
        fn >>= 1n;
        sn >>= 1n;
      }
      return sn === 0n && same(r, hex(proof.checkpoint.root_hash));
    } catch (_) {
      return false;
    }
  }

  // --- start ------------------------------------------------------------------------------------------------

  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut(''));
    $('refresh').addEventListener('click', () => refresh(true));
    $('receipt-close').addEventListener('click', closeReceipt);
    $('reviewer-name').addEventListener('input', (e) => sessionStorage.setItem(NAME_ITEM, e.target.value));
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.key) refresh(true);
    });
    const key = sessionStorage.getItem(KEY_ITEM);
    if (key) {
      state.key = key;
      enterApp();
    } else {
      $('api-key').focus();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
