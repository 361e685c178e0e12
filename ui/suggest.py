"""Search as you type: title suggestions under a Streamlit text input while it is being typed.

Why our own: streamlit-searchbox (PyPI) draws its box in an iframe and runs the whole app on
every keystroke; this is a small components-v2 component (in the page, no iframe) that listens
to the existing `st.text_input`, so Enter still commits the query as before (and AppTests and
keyboard users keep the plain widget). While typing, the normalised text is sent back after a
pause (DEBOUNCE_MS) as the state value "typed"; the app searches it through the client
(`search`, cached) and the next render lists the best matches under the box. Arrow keys and
Enter, or a click, pick one: the trigger "pick" carries its id, accepted only if it is one of
the suggestions offered. Queries are normalised, at least MIN_QUERY and at most
MAX_SEARCH_QUERY_CHARS characters (the client refuses longer ones); titles are shown as text
nodes, never as markup.
"""

import json
import re
from typing import Callable, Dict, List, MutableMapping, Optional, Sequence

from serving.client import Item, ServingError
from towergraph.constants import MAX_SEARCH_QUERY_CHARS
from ui import views

MIN_QUERY = 2
SUGGESTIONS = 8
DEBOUNCE_MS = 150
TITLE_CHARS = 90
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_JS = r"""
const CONFIG = __CONFIG__;

function normalise(text) {
  return text.split(/\s+/).filter(Boolean).join(" ").slice(0, CONFIG.maxQuery);
}

function hide(root) {
  root.__open = false;
  root.__sent = null;
  root.__active = -1;
  render(root);
}

function pick(root, item) {
  root.__open = false;
  root.__sent = null;
  render(root);
  const input = root.__input;
  if (input && item.query) {
    // The box shows the picked title, as the app's query now is (React reads the setter).
    const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
    root.__silent = true;
    setter.call(input, item.query);
    input.dispatchEvent(new Event("input", {bubbles: true}));
    root.__silent = false;
  }
  root.__trigger("pick", item.id);
}

function render(root) {
  const list = root.querySelector(".tg-suggest-list");
  const data = root.__data || {items: []};
  const input = root.__input;
  const fresh = input && data.for === normalise(input.value);
  list.replaceChildren();
  if (!root.__open || !fresh || !data.items.length) {
    list.hidden = true;
    if (input) input.setAttribute("aria-expanded", "false");
    return;
  }
  data.items.forEach((item, index) => {
    const option = document.createElement("li");
    option.className = "tg-suggest-item" + (index === root.__active ? " tg-active" : "");
    option.setAttribute("role", "option");
    option.setAttribute("aria-selected", index === root.__active ? "true" : "false");
    option.dataset.item = item.id;
    const title = document.createElement("span");
    title.className = "tg-suggest-title";
    title.textContent = item.title;                          // text, never markup
    const detail = document.createElement("span");
    detail.className = "tg-suggest-detail";
    detail.textContent = item.detail;
    option.append(title, detail);
    option.addEventListener("mousedown", (event) => {        // before the input's blur
      event.preventDefault();
      pick(root, item);
    });
    list.append(option);
  });
  list.hidden = false;
  input.setAttribute("aria-expanded", "true");
}

function attach(root, input) {
  root.__input = input;
  if (input.__tgSuggest === root) return;
  input.__tgSuggest = root;
  input.setAttribute("aria-autocomplete", "list");
  input.addEventListener("input", () => {
    if (root.__silent) return;
    root.__open = true;
    root.__active = -1;
    clearTimeout(root.__timer);
    const query = normalise(input.value);
    render(root);
    if (query.length < CONFIG.minQuery) return;
    root.__timer = setTimeout(() => {
      if (query !== root.__sent) { root.__sent = query; root.__state("typed", query); }
    }, CONFIG.debounceMs);
  });
  input.addEventListener("keydown", (event) => {
    const data = root.__data || {items: []};
    const shown = !root.querySelector(".tg-suggest-list").hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!shown) return;
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      const count = data.items.length;
      // -1 (the typed text) .. count - 1, wrapping around
      root.__active = ((root.__active ?? -1) + 1 + step + count + 1) % (count + 1) - 1;
      render(root);
    } else if (event.key === "Enter") {
      clearTimeout(root.__timer);          // the committed query needs no suggestions
      if (shown && root.__active >= 0 && root.__active < data.items.length) {
        event.preventDefault();
        event.stopPropagation();           // the text input does not commit the typed text
        pick(root, data.items[root.__active]);
      } else {
        hide(root);                        // Enter commits the query, as before
      }
    } else if (event.key === "Escape") {
      clearTimeout(root.__timer);
      hide(root);
    }
  });
  input.addEventListener("blur", () => { clearTimeout(root.__timer); hide(root); });
}

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  const root = parentElement.querySelector(".tg-suggest");
  root.__state = setStateValue;
  root.__trigger = setTriggerValue;
  root.__data = data;
  const find = (tries) => {
    const input = document.querySelector(".st-key-" + CONFIG.target + " input");
    if (input) { attach(root, input); render(root); }
    else if (tries > 0) requestAnimationFrame(() => find(tries - 1));
  };
  find(30);
}
"""

_HTML = '<div class="tg-suggest"><ul class="tg-suggest-list" role="listbox" hidden></ul></div>'

_CSS = """
.tg-suggest { position: relative; height: 0; }
.tg-suggest-list { position: absolute; top: -0.9rem; left: 0; right: 0; z-index: 1000;
  margin: 0; padding: 0.25rem 0; list-style: none; max-height: 22rem; overflow-y: auto;
  background: var(--st-background-color, #ffffff); color: var(--st-text-color, #31333f);
  border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 0.5rem;
  box-shadow: 0 6px 18px rgba(0, 0, 0, 0.15); }
.tg-suggest-item { display: flex; gap: 0.6rem; align-items: baseline; padding: 0.35rem 0.75rem;
  cursor: pointer; margin: 0; }
.tg-suggest-item:hover, .tg-suggest-item.tg-active { background: rgba(255, 75, 75, 0.12); }
.tg-suggest-title { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tg-suggest-detail { font-size: 0.8rem; opacity: 0.65; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
"""


def typed_query(value) -> Optional[str]:
    """The typed text as the app searches it (whitespace normalised), or None when it is not
    text, shorter than MIN_QUERY or longer than MAX_SEARCH_QUERY_CHARS: from the browser,
    anything may arrive."""
    if not isinstance(value, str):
        return None
    query = " ".join(value.split())
    if not MIN_QUERY <= len(query) <= MAX_SEARCH_QUERY_CHARS:
        return None
    return query


def rows(items: Sequence[Item], limit: int = SUGGESTIONS) -> List[Dict[str, str]]:
    """What the list shows: plain strings (the browser sets them as text)."""
    shown = []
    for item in list(items)[:limit]:
        detail = " · ".join(part for part in ("new" if getattr(item, "cold", False) else "",
                                              views.list_field(item.authors),
                                              views.list_field(item.genres)) if part)
        shown.append({"id": str(item.item_id),
                      "title": views.shorten(item.title or item.item_id, TITLE_CHARS),
                      # what the box shows once picked: the query the app then has
                      "query": " ".join(str(item.title).split())
                      if len(str(item.title)) <= MAX_SEARCH_QUERY_CHARS else "",
                      "detail": views.shorten(detail, 60)})
    return shown


def _config(target: str) -> str:
    return json.dumps({"target": target, "minQuery": MIN_QUERY,
                       "maxQuery": MAX_SEARCH_QUERY_CHARS, "debounceMs": DEBOUNCE_MS})


def _renderer(target: str):
    import streamlit as st

    js = _JS.replace("__CONFIG__", _config(target))
    return st.components.v2.component(f"towergraph_suggest_{target}", html=_HTML, css=_CSS,
                                      js=js, isolate_styles=False)


def show(target: str, key: str, search: Callable[[str], Sequence[Item]],
         on_pick: Callable[[Item], None], store: Optional[MutableMapping] = None) -> None:
    """Suggestions under the text input whose key is `target`. search(query) gives the items
    (ServingError: no suggestions); on_pick(item) runs, before the next run, when the reader
    picks one of those offered."""
    import streamlit as st

    if not _KEY.match(target):
        raise ValueError(f"not a widget key this component can find: {target!r}")
    store = st.session_state if store is None else store
    typed_key, offered_key = f"{key}::typed", f"{key}::offered"

    def typed() -> None:
        store[typed_key] = typed_query((st.session_state.get(key) or {}).get("typed"))

    def picked() -> None:
        value = (st.session_state.get(key) or {}).get("pick")
        item = store.get(offered_key, {}).get(value) if isinstance(value, str) else None
        if item is not None:
            store[typed_key] = None
            on_pick(item)

    query = store.get(typed_key)
    items: Sequence[Item] = []
    if query:
        try:
            items = search(query)[:SUGGESTIONS]
        except ServingError:
            items = []
    store[offered_key] = {str(item.item_id): item for item in items}
    _renderer(target)(key=key, data={"for": query or "", "items": rows(items)},
                      height="content", on_typed_change=typed, on_pick_change=picked)
