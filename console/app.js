// The agents' console: sign-in, the live queue, a conversation (transcript, reply, close,
// assign, share), the saved views. Everything it shows comes from the Web API with the
// signed-in token, so the security model decides what an agent sees.

import { api, all, quote, token, setToken, clearToken, whenUnauthorized, devLoginOffered, devLogin, openEvents } from './api.js';
import { h, fill, dialog, field, showError, showNotice, hideAlert, when, decodeTranscript, author, ticks } from './ui.js';
import { renderAdmin } from './admin.js';

const TRANSCRIPTS = 'msdyn_ocliveworkitem_msdyn_transcript_msdyn_liveworkitemidid';
const NOTES = 'msdyn_transcript_annotation_objectid';
const TRANSCRIPT_EXPAND = `${TRANSCRIPTS}($select=msdyn_transcriptid;$expand=${NOTES}($select=documentbody,modifiedon))`;
const CLOSED = { statecode: 1, statuscode: 4 };

const main = () => document.getElementById('main');

/** Who is signed in, and what the console knows about the organisation. */
const session = {
  userId: null,
  name: '',
  isAdmin: false,
  principals: null, // {users: [...], teams: [...]} once loaded
  closeEvents: null,
  queue: [],
  openId: null,
  refreshTimer: null,
  live: 'connecting',
};

// ---- sign-in ------------------------------------------------------------------------------

async function signIn(candidate) {
  setToken(candidate);
  try {
    const me = await api('WhoAmI', { annotations: false });
    session.userId = me.UserId;
    const user = await api(`systemusers(${me.UserId})?$select=fullname,domainname`, { annotations: false });
    session.name = user.fullname || user.domainname || me.UserId;
  } catch (e) {
    clearToken();
    throw e;
  }
  try {
    await api('smsctx_smschannels', { annotations: false });
    session.isAdmin = true;
  } catch {
    session.isAdmin = false;
  }
  hideAlert();
  startEvents();
  showChrome();
  route();
}

function signOut(reason) {
  clearToken();
  if (session.closeEvents) session.closeEvents();
  Object.assign(session, { userId: null, isAdmin: false, principals: null, closeEvents: null, queue: [], openId: null });
  showChrome();
  renderSignIn();
  if (reason) showError(reason, 'Signed out');
}

async function renderSignIn() {
  const input = h('textarea', { id: 'token', rows: 3, required: true, autocomplete: 'off', spellcheck: 'false' });
  const error = h('p', { class: 'dialog-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'panel signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to the console'),
    field('Bearer token', input, 'A token for your user (smsctx token --user …), or the admin token.'),
    error,
    h('div', { class: 'actions' }, submit),
  );
  const attempt = async (get) => {
    submit.disabled = true;
    error.hidden = true;
    try {
      await signIn(await get());
    } catch (e) {
      fill(error, e.message + (e.code ? ` (${e.code})` : ''));
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(async () => input.value.trim());
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  fill(main(), form);
  input.focus();
  if (await devLoginOffered()) {
    form.append(
      h('p', { class: 'dev' }, 'This server runs with the development login: ',
        h('button', { type: 'button', id: 'dev-login', onclick: () => attempt(devLogin) }, 'Sign in as the administrator (development)')),
    );
  }
}

function showChrome() {
  const signedIn = !!session.userId;
  document.getElementById('nav').hidden = !signedIn;
  document.querySelector('[data-section="admin"]').hidden = !session.isAdmin;
  document.getElementById('signout').hidden = !signedIn;
  const who = document.getElementById('who');
  fill(who, signedIn ? h('span', {}, session.name, ' · ', h('span', { id: 'live', class: `live live-${session.live}` }, session.live)) : '');
}

function setLive(state) {
  session.live = state;
  const badge = document.getElementById('live');
  if (badge) {
    badge.textContent = state;
    badge.className = `live live-${state.split(' ')[0]}`;
  }
}

// ---- live events --------------------------------------------------------------------------

function startEvents() {
  if (session.closeEvents) session.closeEvents();
  session.closeEvents = openEvents(
    (name) => {
      // `ready` (re)connected: what happened meanwhile is refetched too.
      if (name === 'ready' || name === 'conversation' || name === 'changed') scheduleRefresh();
    },
    setLive,
  );
}

/** Refetches what is on screen, at most every 300 ms however many events arrive. */
function scheduleRefresh() {
  if (session.refreshTimer) return;
  session.refreshTimer = setTimeout(async () => {
    session.refreshTimer = null;
    const section = currentSection();
    if (section.name === 'queue') {
      await refreshQueue();
      if (session.openId) await refreshConversation(session.openId);
    }
  }, 300);
}

// ---- the queue ----------------------------------------------------------------------------

const seenKey = () => `smsctx.seen.${session.userId}`;
const seen = () => JSON.parse(localStorage.getItem(seenKey()) || '{}');
function markSeen(conversationId, messages) {
  const last = messages.filter((m) => author(m).kind === 'customer').at(-1);
  if (!last) return;
  const marks = seen();
  marks[conversationId] = last.id;
  localStorage.setItem(seenKey(), JSON.stringify(marks));
}

function messagesOf(conversation) {
  const transcripts = conversation[TRANSCRIPTS] || [];
  const notes = transcripts.flatMap((t) => t[NOTES] || []);
  return notes.flatMap((n) => decodeTranscript(n.documentbody)).sort((a, b) => Number(a.id) - Number(b.id));
}

function queueItem(conversation) {
  const messages = messagesOf(conversation);
  const last = messages.at(-1);
  const lastSeen = Number(seen()[conversation.activityid] || 0);
  const unread = messages.filter((m) => author(m).kind === 'customer' && Number(m.id) > lastSeen).length;
  return {
    id: conversation.activityid,
    subject: conversation.subject || '(no subject)',
    last,
    at: (last && last.createdDateTime) || conversation.createdon,
    unread: conversation.activityid === session.openId ? 0 : unread,
    owner: conversation['_ownerid_value@OData.Community.Display.V1.FormattedValue'] || '',
  };
}

async function loadQueue() {
  const list = 'msdyn_ocliveworkitems?$filter=statecode eq 0&$select=subject,createdon,_ownerid_value';
  let rows;
  try {
    rows = await all(`${list}&$expand=${TRANSCRIPT_EXPAND}`, 500);
  } catch (e) {
    // A role that reads conversations but not transcripts (or notes): the queue without them.
    if (e.status !== 403) throw e;
    rows = await all(list, 500);
  }
  session.queue = rows.map(queueItem).sort((a, b) => String(b.at).localeCompare(String(a.at)));
}

function renderQueueList() {
  const list = document.getElementById('queue-list');
  if (!list) return;
  const count = document.getElementById('queue-count');
  if (count) count.textContent = `${session.queue.length} active`;
  if (session.queue.length === 0) {
    fill(list, h('li', { class: 'empty' }, 'No active conversations you may read.'));
    return;
  }
  fill(
    list,
    session.queue.map((item) =>
      h(
        'li',
        { class: item.id === session.openId ? 'current' : '' },
        h(
          'a',
          { href: `#/queue/${item.id}`, class: 'queue-item', dataset: { id: item.id }, 'aria-current': item.id === session.openId ? 'true' : null },
          h('span', { class: 'q-subject' }, item.subject),
          item.unread ? h('span', { class: 'badge', 'aria-label': `${item.unread} unread` }, String(item.unread)) : null,
          h('span', { class: 'q-last' }, item.last ? item.last.content : ''),
          h('time', { class: 'q-time', datetime: item.at }, when(item.at)),
        ),
      ),
    ),
  );
}

async function refreshQueue() {
  try {
    await loadQueue();
    renderQueueList();
  } catch (e) {
    showError(e, 'The queue could not be read');
  }
}

async function renderQueue(openId) {
  session.openId = openId || null;
  let layout = document.getElementById('queue-layout');
  if (!layout) {
    layout = h(
      'div',
      { id: 'queue-layout', class: 'split' },
      h(
        'section',
        { class: 'queue', 'aria-labelledby': 'queue-title' },
        h('div', { class: 'section-head' }, h('h1', { id: 'queue-title' }, 'Queue'), h('span', { id: 'queue-count', class: 'muted' })),
        h('ul', { id: 'queue-list', class: 'queue-list' }, h('li', { class: 'empty' }, 'Loading…')),
      ),
      h('section', { id: 'conversation', class: 'conversation', 'aria-live': 'polite' }),
    );
    fill(main(), layout);
  }
  layout.classList.toggle('has-open', !!session.openId);
  const pane = document.getElementById('conversation');
  if (!session.openId) {
    fill(pane, h('p', { class: 'muted placeholder' }, 'Choose a conversation from the queue.'));
  } else {
    fill(pane, h('p', { class: 'muted placeholder' }, 'Loading the conversation…'));
  }
  renderQueueList();
  await refreshQueue();
  if (session.openId) await refreshConversation(session.openId, true);
}

// ---- a conversation -----------------------------------------------------------------------

async function principals() {
  if (!session.principals) {
    const [users, teams] = await Promise.all([
      all('systemusers?$select=fullname,domainname,isdisabled&$orderby=fullname'),
      all('teams?$select=name&$orderby=name'),
    ]);
    session.principals = { users: users.filter((u) => !u.isdisabled), teams };
  }
  return session.principals;
}

/** A user's or team's name, once the principals are loaded. */
function ownerName(id) {
  if (!id || !session.principals) return '';
  const user = session.principals.users.find((u) => u.systemuserid === id);
  const team = session.principals.teams.find((t) => t.teamid === id);
  return user ? user.fullname || user.domainname : team ? team.name : '';
}

function principalSelect(id) {
  const select = h('select', { id, required: true });
  principals()
    .then(({ users, teams }) => {
      fill(
        select,
        h('optgroup', { label: 'Users' }, users.map((u) => h('option', { value: `systemusers(${u.systemuserid})` }, u.fullname || u.domainname))),
        teams.length ? h('optgroup', { label: 'Teams' }, teams.map((t) => h('option', { value: `teams(${t.teamid})` }, t.name))) : null,
      );
    })
    .catch((e) => showError(e, 'Users and teams could not be read'));
  return select;
}

async function loadConversation(id) {
  const one = `msdyn_ocliveworkitems(${id})?$select=subject,statecode,statuscode,createdon,_ownerid_value`;
  let conversation;
  try {
    conversation = await api(`${one}&$expand=${TRANSCRIPT_EXPAND}`);
  } catch (e) {
    if (e.status !== 403 || e.code === '0x80048306') throw e;
    conversation = await api(one);
  }
  const contexts = await api(
    `msdyn_smsengagementctxes?$filter=_msdyn_liveworkitemid_value eq ${id}&$select=msdyn_name,msdyn_customerphonenumber,msdyn_orgphonenumber,statecode&$orderby=createdon desc&$top=1`,
  );
  return { conversation, context: contexts.value[0] || null, messages: messagesOf(conversation) };
}

async function refreshConversation(id, first = false) {
  let loaded;
  try {
    await principals().catch(() => null);
    loaded = await loadConversation(id);
  } catch (e) {
    const pane = document.getElementById('conversation');
    if (id !== session.openId || !pane) return;
    fill(pane, h('p', { class: 'panel error-text' }, `This conversation cannot be shown: ${e.message}`));
    return;
  }
  // The agent moved on meanwhile (another conversation, another section).
  if (id !== session.openId || !document.getElementById('conversation')) return;
  markSeen(id, loaded.messages);
  const item = session.queue.find((q) => q.id === id);
  if (item && item.unread) {
    item.unread = 0;
    renderQueueList();
  }
  renderConversation(loaded, first);
}

function renderConversation({ conversation, context, messages }, first) {
  const pane = document.getElementById('conversation');
  const id = conversation.activityid;
  const open = conversation.statecode === 0;
  let view = pane.querySelector(`[data-conversation="${id}"]`);
  if (!view) {
    view = h('article', { dataset: { conversation: id }, class: 'thread' });
    fill(pane, view);
    first = true;
  }
  const state = conversation['statecode@OData.Community.Display.V1.FormattedValue'] || (open ? 'Open' : 'Closed');
  const owner = conversation['_ownerid_value@OData.Community.Display.V1.FormattedValue'] || ownerName(conversation._ownerid_value);
  const header = h(
    'header',
    { class: 'thread-head' },
    h('a', { href: '#/queue', class: 'back' }, '← Queue'),
    h('h2', { id: 'thread-title' }, conversation.subject || '(no subject)'),
    h(
      'p',
      { class: 'muted' },
      h('span', { id: 'thread-state' }, state),
      context ? ` · customer +${context.msdyn_customerphonenumber} · number +${context.msdyn_orgphonenumber}` : '',
      owner ? ` · owner ${owner}` : '',
    ),
    h(
      'div',
      { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => assignDialog(id, context), disabled: !open }, 'Assign…'),
      h('button', { type: 'button', onclick: () => shareDialog(id, context) }, 'Share…'),
      h('button', { type: 'button', class: 'danger', onclick: () => closeDialog(id), disabled: !open }, 'Close conversation'),
    ),
  );
  const transcript = h(
    'ol',
    { class: 'transcript', 'aria-label': 'Transcript' },
    messages.length
      ? messages.map((m) => {
          const who = author(m);
          return h(
            'li',
            { class: `msg msg-${who.kind}` },
            h('span', { class: 'msg-who' }, who.name),
            h('p', { class: 'msg-text' }, m.content),
            h('span', { class: 'msg-meta' }, h('time', { datetime: m.createdDateTime }, when(m.createdDateTime)), ' ', ticks(m)),
          );
        })
      : h('li', { class: 'empty' }, 'No messages yet.'),
  );
  const oldHeader = view.querySelector('.thread-head');
  const oldTranscript = view.querySelector('.transcript');
  if (oldHeader) oldHeader.replaceWith(header);
  else view.append(header);
  if (oldTranscript) oldTranscript.replaceWith(transcript);
  else view.append(transcript);
  let reply = view.querySelector('.reply');
  const canReply = open && context && context.statecode === 0;
  if (!reply) {
    reply = replyBox(context);
    view.append(reply);
  }
  reply.dataset.context = context ? context.msdyn_smsengagementctxid : '';
  for (const control of reply.querySelectorAll('textarea, button')) control.disabled = !canReply;
  const hint = reply.querySelector('.reply-hint');
  hint.textContent = canReply ? 'Enter sends; Shift+Enter starts a new line.' : 'This conversation is closed: no reply can be sent.';
  transcript.scrollTop = transcript.scrollHeight;
  if (first) view.querySelector('h2').focus?.();
}

function replyBox() {
  const text = h('textarea', { id: 'reply-text', rows: 2, 'aria-label': 'Reply to the customer', maxlength: 1600, placeholder: 'Type a reply' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const form = h('form', { class: 'reply' }, text, send, h('small', { class: 'reply-hint muted' }));
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const message = text.value.trim();
    const contextId = form.dataset.context;
    if (!message || !contextId) return;
    send.disabled = true;
    try {
      await api(`msdyn_smsengagementctxes(${contextId})/Microsoft.Dynamics.CRM.smsctx_SendSms`, {
        method: 'POST',
        body: { Message: message },
        annotations: false,
      });
      text.value = '';
      hideAlert();
      await refreshConversation(session.openId);
    } catch (e) {
      showError(e, 'The reply was not sent');
    } finally {
      send.disabled = false;
      text.focus();
    }
  });
  return form;
}

function closeDialog(id) {
  dialog({
    title: 'Close this conversation?',
    body: h('p', {}, 'Its engagement context is deactivated; the customer’s next message opens a new conversation.'),
    submit: 'Close conversation',
    onSubmit: async () => {
      await api(`msdyn_ocliveworkitems(${id})`, { method: 'PATCH', body: CLOSED, annotations: false });
      showNotice('The conversation is closed.');
      await refreshQueue();
      await refreshConversation(id);
    },
  });
}

function assignDialog(id, context) {
  const select = principalSelect('assign-to');
  dialog({
    title: 'Assign the conversation',
    body: [field('Assign to', select, 'The new owner gets the conversation and its active context.')],
    submit: 'Assign',
    onSubmit: async () => {
      const bind = { 'ownerid@odata.bind': `/${select.value}` };
      await api(`msdyn_ocliveworkitems(${id})`, { method: 'PATCH', body: bind, annotations: false });
      if (context) {
        await api(`msdyn_smsengagementctxes(${context.msdyn_smsengagementctxid})`, { method: 'PATCH', body: bind, annotations: false });
      }
      showNotice('Assigned.');
      await refreshQueue();
      if (session.openId === id) await refreshConversation(id);
    },
  });
}

const RIGHTS = ['ReadAccess', 'WriteAccess', 'AppendAccess', 'AppendToAccess', 'AssignAccess', 'ShareAccess'];

function shareDialog(id, context) {
  const select = principalSelect('share-with');
  const boxes = RIGHTS.map((right, i) => {
    const box = h('input', { type: 'checkbox', value: right, id: `right-${right}`, checked: i < 2 });
    return h('label', { class: 'check', for: box.id }, box, ' ', right.replace('Access', ''));
  });
  dialog({
    title: 'Share the conversation',
    body: [field('Share with', select), h('fieldset', {}, h('legend', {}, 'Access'), boxes)],
    submit: 'Share',
    onSubmit: async (form) => {
      const mask = [...form.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value).join(', ');
      if (!mask) throw new Error('Choose at least one access right.');
      const [set, rest] = select.value.split('(');
      const principalId = rest.slice(0, -1);
      const principal = set === 'teams'
        ? { '@odata.type': 'Microsoft.Dynamics.CRM.team', teamid: principalId }
        : { '@odata.type': 'Microsoft.Dynamics.CRM.systemuser', systemuserid: principalId };
      const targets = [{ '@odata.type': 'Microsoft.Dynamics.CRM.msdyn_ocliveworkitem', activityid: id }];
      if (context) {
        targets.push({ '@odata.type': 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx', msdyn_smsengagementctxid: context.msdyn_smsengagementctxid });
      }
      for (const target of targets) {
        await api('GrantAccess', { method: 'POST', body: { Target: target, PrincipalAccess: { Principal: principal, AccessMask: mask } }, annotations: false });
      }
      showNotice('Shared.');
    },
  });
}

// ---- views --------------------------------------------------------------------------------

const VIEW_TABLE = 'msdyn_smsengagementctx';
const VIEW_SET = 'msdyn_smsengagementctxes';
const PAGE = 25;
const views = { list: null, types: null, current: null, order: null, pages: [], columns: [], fallback: false };

async function attributeTypes() {
  if (!views.types) {
    const rows = await api(`EntityDefinitions(LogicalName='${VIEW_TABLE}')/Attributes?$select=LogicalName,AttributeType`, { annotations: false });
    views.types = Object.fromEntries(rows.value.map((a) => [a.LogicalName, a.AttributeType]));
  }
  return views.types;
}

const isLookup = (type) => ['Lookup', 'Owner', 'Customer'].includes(type);
const property = (name) => (isLookup(views.types[name]) ? `_${name}_value` : name);

/** A literal of the column's type in OData. */
function literal(name, value) {
  const type = views.types[name];
  if (['String', 'Memo', 'EntityName'].includes(type)) return quote(value);
  return value;
}

const OPERATORS = { eq: 'eq', ne: 'ne', neq: 'ne', gt: 'gt', ge: 'ge', lt: 'lt', le: 'le' };

/** The OData $filter of a FetchXML <filter>, or null when it uses what has no simple spelling. */
function odataFilter(filter) {
  const parts = [];
  for (const child of filter.children) {
    if (child.tagName === 'condition') {
      const name = child.getAttribute('attribute');
      const op = child.getAttribute('operator');
      const value = child.getAttribute('value');
      if (!(name in views.types)) return null;
      if (op === 'null') parts.push(`${property(name)} eq null`);
      else if (op === 'not-null') parts.push(`${property(name)} ne null`);
      else if (OPERATORS[op] && value !== null) parts.push(`${property(name)} ${OPERATORS[op]} ${literal(name, value)}`);
      else return null;
    } else if (child.tagName === 'filter') {
      const inner = odataFilter(child);
      if (inner === null) return null;
      if (inner) parts.push(`(${inner})`);
    } else {
      return null;
    }
  }
  const joiner = filter.getAttribute('type') === 'or' ? ' or ' : ' and ';
  return parts.join(joiner);
}

/** The view's columns, filter and order, as OData list options (null: not expressible). */
function viewQuery(view) {
  const fetch = new DOMParser().parseFromString(view.fetchxml, 'application/xml');
  const layout = new DOMParser().parseFromString(view.layoutxml || '<grid/>', 'application/xml');
  const entity = fetch.querySelector('entity');
  if (!entity || entity.querySelector('link-entity')) return null;
  const columns = [...layout.querySelectorAll('cell')].map((c) => c.getAttribute('name')).filter((n) => n in views.types);
  const order = entity.querySelector(':scope > order');
  let filter = '';
  for (const f of entity.querySelectorAll(':scope > filter')) {
    const text = odataFilter(f);
    if (text === null) return null;
    if (text) filter = filter ? `${filter} and (${text})` : text;
  }
  return {
    columns: columns.length ? columns : ['msdyn_name'],
    filter,
    order: order ? { column: order.getAttribute('attribute'), descending: order.getAttribute('descending') === 'true' } : null,
  };
}

async function renderViews(viewId) {
  fill(main(), h('section', { class: 'panel' }, h('p', {}, 'Loading the views…')));
  try {
    await attributeTypes();
    if (!views.list) {
      const rows = await api(
        `savedqueries?$filter=returnedtypecode eq '${VIEW_TABLE}'&$select=name,fetchxml,layoutxml,isdefault&$orderby=name`,
        { annotations: false },
      );
      views.list = rows.value;
    }
  } catch (e) {
    fill(main(), h('section', { class: 'panel' }, h('p', { class: 'error-text' }, `The views cannot be read: ${e.message}`)));
    return;
  }
  if (views.list.length === 0) {
    fill(main(), h('section', { class: 'panel' }, h('p', {}, 'No views of this table.')));
    return;
  }
  const view = views.list.find((v) => v.savedqueryid === viewId) || views.list.find((v) => v.isdefault) || views.list[0];
  const switcher = h(
    'select',
    { id: 'view-switcher', onchange: (event) => (location.hash = `#/views/${event.target.value}`) },
    views.list.map((v) => h('option', { value: v.savedqueryid, selected: v.savedqueryid === view.savedqueryid }, v.name)),
  );
  const query = viewQuery(view);
  views.current = view;
  views.fallback = !query;
  views.columns = query ? query.columns : [];
  views.query = query;
  views.order = query ? query.order : null;
  views.pages = [];
  fill(
    main(),
    h(
      'section',
      { class: 'panel views', 'aria-labelledby': 'views-title' },
      h('div', { class: 'section-head' }, h('h1', { id: 'views-title' }, 'Views'), field('View', switcher)),
      h('div', { id: 'view-body' }),
    ),
  );
  await loadViewPage(firstPageUrl());
}

function firstPageUrl() {
  if (views.fallback) return `${VIEW_SET}?savedQuery=${views.current.savedqueryid}`;
  const { columns, filter } = views.query;
  const options = [`$select=${columns.map(property).join(',')}`];
  if (filter) options.push(`$filter=${encodeURIComponent(filter)}`);
  if (views.order && views.order.column in views.types) {
    options.push(`$orderby=${property(views.order.column)}${views.order.descending ? ' desc' : ''}`);
  }
  return `${VIEW_SET}?${options.join('&')}`;
}

async function loadViewPage(url) {
  const body = document.getElementById('view-body');
  let page;
  try {
    page = await api(url, { pageSize: PAGE });
  } catch (e) {
    fill(body, h('p', { class: 'error-text' }, `This view cannot be run: ${e.message}`));
    return;
  }
  views.pages.push(url);
  const columns = views.fallback ? Object.keys(page.value[0] || {}).filter((k) => !k.includes('@') && !k.endsWith('id')) : views.columns;
  const sortButton = (name) => {
    const active = views.order && views.order.column === name;
    const label = active ? (views.order.descending ? ' ▼' : ' ▲') : '';
    return h(
      'button',
      {
        type: 'button',
        class: 'link sort',
        disabled: views.fallback,
        onclick: () => {
          views.order = { column: name, descending: active ? !views.order.descending : false };
          views.pages = [];
          loadViewPage(firstPageUrl());
        },
      },
      name,
      label,
    );
  };
  const cell = (row, name) => {
    const key = views.fallback ? name : property(name);
    return row[`${key}@OData.Community.Display.V1.FormattedValue`] ?? row[key] ?? '';
  };
  const sortState = (name) => (views.order && views.order.column === name ? (views.order.descending ? 'descending' : 'ascending') : null);
  fill(
    body,
    views.fallback ? h('p', { class: 'muted' }, 'This view runs as saved (its filter has no OData spelling here): no sorting or paging.') : null,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'grid' },
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', 'aria-sort': sortState(c) }, sortButton(c))))),
        h(
          'tbody',
          {},
          page.value.length
            ? page.value.map((row) => h('tr', {}, columns.map((c) => h('td', {}, String(cell(row, c))))))
            : h('tr', {}, h('td', { colspan: columns.length || 1 }, 'No rows.')),
        ),
      ),
    ),
    h(
      'div',
      { class: 'pager' },
      h(
        'button',
        {
          type: 'button',
          disabled: views.pages.length < 2,
          onclick: () => {
            views.pages.pop();
            const previous = views.pages.pop();
            loadViewPage(previous);
          },
        },
        '← Previous page',
      ),
      h('span', { class: 'muted' }, `Page ${views.pages.length}`),
      h(
        'button',
        { type: 'button', id: 'next-page', disabled: !page['@odata.nextLink'], onclick: () => loadViewPage(page['@odata.nextLink']) },
        'Next page →',
      ),
    ),
  );
}

// ---- routing ------------------------------------------------------------------------------

function currentSection() {
  const [, name = 'queue', id] = location.hash.replace(/^#/, '').split('/');
  return { name, id };
}

async function route() {
  if (!session.userId) return;
  const { name, id } = currentSection();
  for (const link of document.querySelectorAll('#nav a')) {
    link.setAttribute('aria-current', link.dataset.section === name ? 'page' : 'false');
  }
  if (name !== 'queue') session.openId = null;
  try {
    if (name === 'views') {
      await renderViews(id);
    } else if (name === 'admin' && session.isAdmin) {
      await renderAdmin(main(), id, { onChange: () => (session.principals = null) });
    } else {
      if (!document.getElementById('queue-layout') || name !== 'queue') fill(main());
      await renderQueue(name === 'queue' ? id : null);
    }
  } catch (e) {
    showError(e);
  }
}

async function start() {
  whenUnauthorized((error) => {
    if (session.userId) signOut(error.message);
  });
  document.getElementById('signout').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', () => {
    if (currentSection().name !== 'queue') document.getElementById('queue-layout')?.remove();
    route();
  });
  const kept = token();
  if (kept) {
    try {
      await signIn(kept);
      return;
    } catch (e) {
      showError(e, 'The kept session cannot be used');
    }
  }
  renderSignIn();
}

window.addEventListener('error', (event) => showError(event.message, 'The console failed'));
window.addEventListener('unhandledrejection', (event) => showError(event.reason, 'The console failed'));
start();

