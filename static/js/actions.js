// blindrelay web client: what a person can do with one message (reply, react, edit, delete)
// and the reactions under it. A "⋯" button on every message opens its actions inside the
// bubble, so that they are reached by keyboard and touch alike (nothing only on hover).
// Every control's name says whose message it acts on ("React to Bob's message with heart").

import { el } from './dom.js';
import { REACTIONS } from './kinds.js';

/** "Bob's message" or "your message". */
export function whose(c, r) {
  return r.mine ? 'your message' : `${c.labelOf(r.from, r.fromName)}'s message`;
}

/** "you", "Bob", "Alice, Bob and you": who reacted, as a person reads it. */
function people(c, ids) {
  const names = ids.filter((u) => u !== c.me).map((u) => c.labelOf(u));
  if (ids.includes(c.me)) names.push('you');
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/** Whether a message can be acted on: decrypted, shown, not deleted, not failed. */
export function actionable(c, r) {
  return Boolean(r.content) && !r.control && !c.notes.isDeleted(r.key)
    && !['queued', 'failed', 'waiting'].includes(r.state);
}

/** The "⋯" button that opens a message's actions. */
export function actionsToggle(c, r, open, onToggle) {
  const b = el('button', {
    type: 'button',
    class: 'msg-actions-toggle',
    text: '⋯',
    'aria-label': `Actions for ${whose(c, r)}`,
    'aria-expanded': String(open),
    'data-focus': 'toggle',
  });
  b.addEventListener('click', (e) => {
    e.stopPropagation();
    onToggle(r);
  });
  return b;
}

/** The open actions of a message: the reactions offered, Reply, and Edit / Delete for one's own. */
export function actionsPanel(c, r, h) {
  const owner = whose(c, r);
  const react = el('div', { class: 'react-row', role: 'group', 'aria-label': `React to ${owner}` });
  for (const { emoji, name } of REACTIONS) {
    const b = el('button', {
      type: 'button',
      class: 'react',
      text: emoji,
      title: name,
      'aria-label': `React to ${owner} with ${name}`,
      'aria-pressed': String(c.notes.reacted(r.key, emoji)),
      'data-focus': `react-${emoji}`,
    });
    b.addEventListener('click', () => h.react(r, emoji));
    react.append(b);
  }
  const panel = el('div', { class: 'msg-actions', role: 'group', 'aria-label': `Actions for ${owner}` }, react);
  const buttons = el('div', { class: 'row' });
  const reply = el('button', { type: 'button', text: 'Reply', 'aria-label': `Reply to ${owner}`, 'data-focus': 'reply' });
  reply.addEventListener('click', () => h.reply(r));
  buttons.append(reply);
  if (r.mine && r.type === 'text') {
    const edit = el('button', { type: 'button', text: 'Edit', 'aria-label': `Edit ${owner}`, 'data-focus': 'edit' });
    edit.addEventListener('click', () => h.edit(r));
    buttons.append(edit);
  }
  if (r.mine) {
    const del = el('button', { type: 'button', class: 'danger', text: 'Delete…', 'aria-label': `Delete ${owner} for everyone…`, 'data-focus': 'delete' });
    del.addEventListener('click', () => h.delete(r));
    buttons.append(del);
  }
  panel.append(buttons);
  panel.addEventListener('click', (e) => e.stopPropagation());
  return panel;
}

/** The reactions under a message: one button per emoji with its count, toggling one's own. */
export function reactionChips(c, r, h) {
  const list = c.notes.reactionsOf(r.key);
  if (!list.length) return null;
  const owner = whose(c, r);
  const box = el('div', { class: 'reactions' });
  for (const { emoji, name, who, mine } of list) {
    const from = people(c, who);
    const b = el('button', {
      type: 'button',
      class: 'chip',
      text: `${emoji} ${who.length}`,
      title: `${name}: ${from}`,
      'aria-label': `${emoji} ${who.length}: ${name} from ${from}, on ${owner}`,
      'aria-pressed': String(mine),
      'data-focus': `chip-${emoji}`,
      'data-emoji': emoji,
    });
    b.addEventListener('click', () => h.react(r, emoji));
    box.append(b);
  }
  return box;
}
