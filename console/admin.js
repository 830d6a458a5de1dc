// Administration, for a System Administrator: SMS channels (add, rotate a secret, remove),
// users, teams and their roles (list, add). Each action is one Web API request; the server
// refuses what the caller may not do, and its message is shown.

import { api, all, BASE } from './api.js';
import { h, fill, dialog, field, showError, showNotice } from './ui.js';

const TABS = [
  ['channels', 'Channels'],
  ['users', 'Users'],
  ['teams', 'Teams'],
];

let hooks = { onChange: () => {} };

/** The Web API URL of a record, for `@odata.id` bodies. */
const absolute = (path) => new URL(BASE + path, location.href).href;

export async function renderAdmin(main, tab = 'channels', options = {}) {
  hooks = { ...hooks, ...options };
  if (!TABS.some(([id]) => id === tab)) tab = 'channels';
  const body = h('div', { id: 'admin-body' }, h('p', {}, 'Loading…'));
  fill(
    main,
    h(
      'section',
      { class: 'panel admin', 'aria-labelledby': 'admin-title' },
      h('h1', { id: 'admin-title' }, 'Administration'),
      h(
        'nav',
        { class: 'tabs', 'aria-label': 'Administration' },
        TABS.map(([id, label]) => h('a', { href: `#/admin/${id}`, 'aria-current': id === tab ? 'page' : 'false' }, label)),
      ),
      body,
    ),
  );
  const render = { channels, users, teams }[tab];
  try {
    await render(body);
  } catch (e) {
    fill(body, h('p', { class: 'error-text' }, `This cannot be shown: ${e.message}`));
  }
}

function table(headers, rows) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'grid' },
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length }, 'None yet.'))),
    ),
  );
}

const input = (attributes) => h('input', { type: 'text', autocomplete: 'off', ...attributes });

// ---- channels -----------------------------------------------------------------------------

async function channels(body) {
  // The channel table takes no query options: sorted here.
  const rows = (await api('smsctx_smschannels')).value.sort((a, b) => a.smsctx_phonenumber.localeCompare(b.smsctx_phonenumber));
  const redraw = () => channels(body).catch((e) => showError(e));
  fill(
    body,
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', id: 'add-channel', onclick: () => addChannel(redraw) }, 'Add channel…')),
    table(
      ['Number', 'Provider', 'Name', 'Account', 'Secret', 'Public URL', ''],
      rows.map((c) =>
        h(
          'tr',
          { dataset: { channel: c.smsctx_smschannelid } },
          h('td', {}, `+${c.smsctx_phonenumber}`),
          h('td', {}, c.smsctx_provider),
          h('td', {}, c.smsctx_name || ''),
          h('td', {}, c.smsctx_account || ''),
          h('td', {}, c.smsctx_secret || ''),
          h('td', {}, c.smsctx_publicurl || ''),
          h(
            'td',
            { class: 'row-actions' },
            h('button', { type: 'button', onclick: () => rotateSecret(c, redraw) }, 'Rotate secret…'),
            h('button', { type: 'button', class: 'danger', onclick: () => removeChannel(c, redraw) }, 'Remove…'),
          ),
        ),
      ),
    ),
  );
}

function addChannel(redraw) {
  const provider = h('select', { id: 'ch-provider' }, h('option', { value: 'twilio' }, 'Twilio'), h('option', { value: 'telesign' }, 'TeleSign'));
  const number = input({ id: 'ch-number', required: true, placeholder: '+14252306549', inputmode: 'tel' });
  const secret = input({ id: 'ch-secret', required: true, type: 'password' });
  const account = input({ id: 'ch-account' });
  const name = input({ id: 'ch-name' });
  const publicUrl = input({ id: 'ch-public-url', type: 'url', placeholder: 'https://sms.example.com/channels/sms/twilio' });
  const apiBase = input({ id: 'ch-api-base', type: 'url' });
  dialog({
    title: 'Add a channel',
    submit: 'Add channel',
    body: [
      field('Provider', provider),
      field('Number (E.164)', number),
      field('Secret', secret, 'Twilio: the auth token; TeleSign: the API key (base64).'),
      field('Account', account, 'Twilio: the Account SID; TeleSign: the customer id.'),
      field('Name', name),
      field('Public URL', publicUrl, 'The webhook URL the provider calls (Twilio signs it).'),
      field('Provider API base URL', apiBase, 'Leave empty for the provider’s own.'),
    ],
    onSubmit: async () => {
      const channel = {
        smsctx_provider: provider.value,
        smsctx_phonenumber: number.value.trim(),
        smsctx_secret: secret.value,
      };
      for (const [key, control] of [
        ['smsctx_account', account],
        ['smsctx_name', name],
        ['smsctx_publicurl', publicUrl],
        ['smsctx_apibaseurl', apiBase],
      ]) {
        if (control.value.trim()) channel[key] = control.value.trim();
      }
      await api('smsctx_smschannels', { method: 'POST', body: channel, annotations: false });
      showNotice(`Channel ${channel.smsctx_phonenumber} added.`);
      await redraw();
    },
  });
}

function rotateSecret(channel, redraw) {
  const secret = input({ id: 'ch-new-secret', required: true, type: 'password' });
  dialog({
    title: `Rotate the secret of +${channel.smsctx_phonenumber}`,
    submit: 'Rotate',
    body: [field('New secret', secret, 'Requests signed with the old secret are refused from now on.')],
    onSubmit: async () => {
      await api(`smsctx_smschannels(${channel.smsctx_smschannelid})`, { method: 'PATCH', body: { smsctx_secret: secret.value }, annotations: false });
      showNotice('Secret rotated.');
      await redraw();
    },
  });
}

function removeChannel(channel, redraw) {
  dialog({
    title: `Remove +${channel.smsctx_phonenumber}?`,
    submit: 'Remove',
    body: h('p', {}, 'Its webhooks are refused from now on; its conversations and transcripts stay.'),
    onSubmit: async () => {
      await api(`smsctx_smschannels(${channel.smsctx_smschannelid})`, { method: 'DELETE', annotations: false });
      showNotice('Channel removed.');
      await redraw();
    },
  });
}

// ---- users and teams ----------------------------------------------------------------------

async function directory() {
  const [units, roles] = await Promise.all([all('businessunits?$select=name'), all('roles?$select=name,_businessunitid_value&$orderby=name')]);
  const unitName = Object.fromEntries(units.map((u) => [u.businessunitid, u.name]));
  const roleName = Object.fromEntries(roles.map((r) => [r.roleid, r.name]));
  return { units, roles, unitName, roleName };
}

function unitSelect(units, id) {
  return h('select', { id, required: true }, units.map((u) => h('option', { value: u.businessunitid }, u.name)));
}

function roleDialog(title, roles, businessUnit, associate, redraw) {
  const own = roles.filter((r) => r._businessunitid_value === businessUnit);
  const select = h('select', { id: 'role-pick', required: true }, own.map((r) => h('option', { value: r.roleid }, r.name)));
  dialog({
    title,
    submit: 'Add role',
    body: [field('Role', select, 'Roles of the principal’s own business unit.')],
    onSubmit: async () => {
      await associate(select.value);
      showNotice('Role added.');
      hooks.onChange();
      await redraw();
    },
  });
}

async function users(body) {
  const [{ units, roles, unitName, roleName }, rows, held] = await Promise.all([
    directory(),
    all('systemusers?$select=fullname,domainname,isdisabled,_businessunitid_value&$orderby=fullname'),
    all('systemuserrolescollection?$select=_roleid_value,_systemuserid_value'),
  ]);
  const redraw = () => users(body).catch((e) => showError(e));
  fill(
    body,
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: () => addUser(units, redraw) }, 'Add user…')),
    table(
      ['Name', 'Domain name', 'Business unit', 'Roles', ''],
      rows.map((u) =>
        h(
          'tr',
          {},
          h('td', {}, u.fullname || '', u.isdisabled ? ' (disabled)' : ''),
          h('td', {}, u.domainname || ''),
          h('td', {}, unitName[u._businessunitid_value] || ''),
          h('td', {}, held.filter((r) => r._systemuserid_value === u.systemuserid).map((r) => roleName[r._roleid_value] || r._roleid_value).join(', ')),
          h(
            'td',
            { class: 'row-actions' },
            h(
              'button',
              {
                type: 'button',
                onclick: () =>
                  roleDialog(`Add a role to ${u.fullname || u.domainname}`, roles, u._businessunitid_value, (role) =>
                    api(`systemusers(${u.systemuserid})/systemuserroles_association/$ref`, { method: 'POST', body: { '@odata.id': absolute(`roles(${role})`) }, annotations: false }), redraw),
              },
              'Add role…',
            ),
          ),
        ),
      ),
    ),
  );
}

function addUser(units, redraw) {
  const first = input({ id: 'u-first', required: true });
  const last = input({ id: 'u-last', required: true });
  const domain = input({ id: 'u-domain', required: true, type: 'email' });
  const oid = input({ id: 'u-oid', placeholder: '00000000-0000-0000-0000-000000000000' });
  const unit = unitSelect(units, 'u-unit');
  dialog({
    title: 'Add a user',
    submit: 'Add user',
    body: [field('First name', first), field('Last name', last), field('Domain name', domain), field('Entra object id', oid, 'The oid of the user’s tokens.'), field('Business unit', unit)],
    onSubmit: async () => {
      const user = {
        firstname: first.value.trim(),
        lastname: last.value.trim(),
        domainname: domain.value.trim(),
        'businessunitid@odata.bind': `/businessunits(${unit.value})`,
      };
      if (oid.value.trim()) user.azureactivedirectoryobjectid = oid.value.trim();
      await api('systemusers', { method: 'POST', body: user, annotations: false });
      showNotice('User added.');
      hooks.onChange();
      await redraw();
    },
  });
}

async function teams(body) {
  const [{ units, roles, unitName, roleName }, rows, held, members, people] = await Promise.all([
    directory(),
    all('teams?$select=name,_businessunitid_value&$orderby=name'),
    all('teamrolescollection?$select=_roleid_value,_teamid_value'),
    all('teammemberships?$select=_systemuserid_value,_teamid_value'),
    all('systemusers?$select=fullname,domainname&$orderby=fullname'),
  ]);
  const personName = Object.fromEntries(people.map((p) => [p.systemuserid, p.fullname || p.domainname]));
  const redraw = () => teams(body).catch((e) => showError(e));
  fill(
    body,
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: () => addTeam(units, redraw) }, 'Add team…')),
    table(
      ['Team', 'Business unit', 'Roles', 'Members', ''],
      rows.map((t) =>
        h(
          'tr',
          {},
          h('td', {}, t.name),
          h('td', {}, unitName[t._businessunitid_value] || ''),
          h('td', {}, held.filter((r) => r._teamid_value === t.teamid).map((r) => roleName[r._roleid_value] || r._roleid_value).join(', ')),
          h('td', {}, members.filter((m) => m._teamid_value === t.teamid).map((m) => personName[m._systemuserid_value] || m._systemuserid_value).join(', ')),
          h(
            'td',
            { class: 'row-actions' },
            h(
              'button',
              {
                type: 'button',
                onclick: () =>
                  roleDialog(`Add a role to ${t.name}`, roles, t._businessunitid_value, (role) =>
                    api(`teams(${t.teamid})/teamroles_association/$ref`, { method: 'POST', body: { '@odata.id': absolute(`roles(${role})`) }, annotations: false }), redraw),
              },
              'Add role…',
            ),
            h('button', { type: 'button', onclick: () => addMember(t, people, redraw) }, 'Add member…'),
          ),
        ),
      ),
    ),
  );
}

function addTeam(units, redraw) {
  const name = input({ id: 't-name', required: true });
  const unit = unitSelect(units, 't-unit');
  dialog({
    title: 'Add a team',
    submit: 'Add team',
    body: [field('Name', name), field('Business unit', unit)],
    onSubmit: async () => {
      await api('teams', { method: 'POST', body: { name: name.value.trim(), 'businessunitid@odata.bind': `/businessunits(${unit.value})` }, annotations: false });
      showNotice('Team added.');
      hooks.onChange();
      await redraw();
    },
  });
}

function addMember(team, people, redraw) {
  const select = h('select', { id: 'member-pick', required: true }, people.map((p) => h('option', { value: p.systemuserid }, p.fullname || p.domainname)));
  dialog({
    title: `Add a member to ${team.name}`,
    submit: 'Add member',
    body: [field('User', select)],
    onSubmit: async () => {
      await api(`teams(${team.teamid})/teammembership_association/$ref`, { method: 'POST', body: { '@odata.id': absolute(`systemusers(${select.value})`) }, annotations: false });
      showNotice('Member added.');
      hooks.onChange();
      await redraw();
    },
  });
}
