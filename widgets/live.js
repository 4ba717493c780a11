// live.js: the front-end half of the MiniAgents widget sync protocol, and the message block.
// Python prepends this file to each widget's own module (stream.js, tree.js, chat.js), so the
// functions and classes below are in scope there. Protocol: see miniagents/notebook/live_widget.py.
//
// Model text is untrusted. While a message streams its text goes into a text node (never parsed as
// HTML); once complete, the HTML rendered and sanitised in Python is sanitised once more here
// (allow-listed tags and attributes, safe link targets only) before it reaches the page.

const SAFE_TAGS = new Set([
  "P", "BR", "HR", "EM", "STRONG", "S", "DEL", "CODE", "PRE", "BLOCKQUOTE", "UL", "OL", "LI",
  "H1", "H2", "H3", "H4", "H5", "H6", "A", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD",
]);
const DROPPED_TAGS = new Set([
  "SCRIPT", "STYLE", "IFRAME", "OBJECT", "EMBED", "TEMPLATE", "SVG", "MATH", "LINK", "META", "BASE",
  "FORM", "INPUT", "TEXTAREA", "BUTTON", "SELECT", "IMG", "VIDEO", "AUDIO", "SOURCE", "NOSCRIPT",
]);
const SAFE_URL = /^(?:(?:https?|mailto):|[^:]*$|[^:]*[/?#])/i;

function isSafeUrl(url) {
  const trimmed = String(url).trim();
  return !/[\u0000-\u001f]/.test(trimmed) && SAFE_URL.test(trimmed);
}

function sanitizeInto(target, html) {
  const template = document.createElement("template");
  template.innerHTML = html; // template content is inert: nothing in it loads or runs
  cleanChildren(template.content);
  target.replaceChildren(template.content);
}

function cleanChildren(parent) {
  for (const node of Array.from(parent.childNodes)) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE) {
      node.remove();
      continue;
    }
    const tag = node.tagName.toUpperCase();
    if (DROPPED_TAGS.has(tag)) {
      node.remove();
      continue;
    }
    cleanChildren(node);
    if (!SAFE_TAGS.has(tag)) {
      node.replaceWith(...Array.from(node.childNodes));
      continue;
    }
    for (const attribute of Array.from(node.attributes)) {
      if (!isSafeAttribute(tag, attribute.name.toLowerCase(), attribute.value)) {
        node.removeAttribute(attribute.name);
      }
    }
    if (tag === "A") {
      node.setAttribute("rel", "noopener noreferrer nofollow");
      node.setAttribute("target", "_blank");
    }
  }
}

function isSafeAttribute(tag, name, value) {
  if (tag === "A") return (name === "href" && isSafeUrl(value)) || name === "title";
  if (tag === "CODE") return name === "class" && /^language-[\w+-]+$/.test(value);
  if (tag === "OL") return name === "start" && /^\d+$/.test(value);
  if (tag === "TH" || tag === "TD") return name === "style" && /^text-align:(left|right|center)$/.test(value);
  return false;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// One message: header (sender, role · model, tokens, hash key), body, error.
// The block of `message` in `blocks` (a Map by message id), made on first use.
function blockIn(blocks, message) {
  let block = blocks.get(message.id);
  if (block === undefined) {
    block = new MessageBlock();
    blocks.set(message.id, block);
  }
  return block;
}

class MessageBlock {
  constructor() {
    this.el = element("div", "miniagents-message");
    this.header = element("div", "miniagents-message-header");
    this.sender = element("span", "miniagents-sender");
    this.details = element("span", "miniagents-details");
    this.stats = element("span", "miniagents-stats");
    this.header.append(this.sender, this.details, this.stats);
    this.body = element("div", "miniagents-message-body");
    this.error = element("div", "miniagents-message-error");
    this.error.hidden = true;
    this.el.append(this.header, this.body, this.error);
    this.textNode = null;
    this.renderedHtml = null;
  }

  update(message) {
    this.el.dataset.status = message.status || "streaming";
    this.sender.textContent = message.sender || "MESSAGE";
    this.details.textContent = [message.role, message.model].filter(Boolean).join(" · ");
    const stats = [];
    if (message.tokens) stats.push(`${message.tokens} token${message.tokens === 1 ? "" : "s"}`);
    if (message.hash_key) stats.push(`#${message.hash_key.slice(0, 8)}`);
    this.stats.textContent = stats.join(" · ");
    if (message.hash_key) this.stats.title = `hash key ${message.hash_key}`;
    this.error.hidden = !message.error;
    this.error.textContent = message.error || "";
    if (message.status === "done" && typeof message.html === "string") {
      if (this.renderedHtml !== message.html) {
        sanitizeInto(this.body, message.html);
        this.renderedHtml = message.html;
        this.textNode = null;
      }
    } else {
      this.setText(message.text || "");
    }
  }

  setText(text) {
    if (this.textNode === null) {
      const pre = element("pre", "miniagents-text");
      this.textNode = document.createTextNode("");
      pre.appendChild(this.textNode);
      this.body.replaceChildren(pre);
      this.renderedHtml = null;
    }
    if (this.textNode.data !== text) this.textNode.data = text;
  }

  appendText(chunk) {
    if (this.renderedHtml !== null) return; // complete already: the rendered markdown shows it all
    if (this.textNode === null) this.setText("");
    this.textNode.appendData(chunk);
  }
}

// The view's copy of the widget's document, kept current from the `state` trait, snapshots and events.
// `listener` gets onMessage(message), onText(message, chunk), onEvent(kind, id, value), onState(state),
// and optionally onBatch() after each batch of events and onCustom(content) for other custom messages.
class LiveDocument {
  constructor(model, listener) {
    this.model = model;
    this.listener = listener;
    this.messages = new Map();
    this.pendingRequest = null;
  }

  start() {
    const onCustom = (content) => this.receive(content);
    const onState = () => this.applyState(this.model.get("state"));
    this.model.on("msg:custom", onCustom);
    this.model.on("change:state", onState);
    const state = this.model.get("state");
    this.applyState(state);
    if (!state || state.live !== false) this.requestSnapshot();
    return () => {
      this.model.off("msg:custom", onCustom);
      this.model.off("change:state", onState);
    };
  }

  message(id) {
    let message = this.messages.get(id);
    if (message === undefined) {
      message = { id, text: "", seq: 0, status: "streaming" };
      this.messages.set(id, message);
    }
    return message;
  }

  requestSnapshot() {
    if (this.pendingRequest !== null) return;
    this.pendingRequest = `${Date.now()}-${Math.random()}`;
    this.model.send({ type: "snapshot-request", request: this.pendingRequest });
  }

  receive(content) {
    if (!content || typeof content !== "object") return;
    if (content.type === "events") {
      for (const event of content.events) this.applyEvent(event);
      if (this.listener.onBatch) this.listener.onBatch();
    } else if (content.type === "snapshot" && content.request === this.pendingRequest) {
      this.pendingRequest = null;
      this.applyState(content.state);
    } else if (this.listener.onCustom) {
      this.listener.onCustom(content);
    }
  }

  applyEvent([kind, id, a, b]) {
    if (kind === "text") {
      const message = this.message(id);
      if (a === message.seq) {
        message.text += b;
        message.seq += 1;
        this.listener.onText(message, b);
      } else if (a > message.seq) {
        this.requestSnapshot(); // a delta was missed (this view rendered mid-stream)
      }
    } else if (kind === "message") {
      const message = Object.assign(this.message(id), a);
      this.listener.onMessage(message);
    } else {
      this.listener.onEvent(kind, id, a);
    }
  }

  applyState(state) {
    if (!state || typeof state !== "object") return;
    for (const [id, snapshot] of Object.entries(state.messages || {})) {
      const message = this.message(id);
      const { text, seq, ...fields } = snapshot;
      Object.assign(message, fields);
      if (seq > message.seq || (seq === message.seq && text.length > message.text.length)) {
        message.text = text;
        message.seq = seq;
      }
      this.listener.onMessage(message);
    }
    this.listener.onState(state);
  }
}
