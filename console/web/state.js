// How states look: a coloured badge, with the reason and attempt of a retrying source.
import { html } from './html.js';

export function StateBadge({ state, reason, attempt }) {
  return html`<span class=${`state state-${state}`} data-state=${state}>${state}</span>${reason
    ? html` <span class="reason" data-reason>${reason}${attempt ? ` (attempt ${attempt})` : ''}</span>` : ''}`;
}
