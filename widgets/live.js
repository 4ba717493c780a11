// live.js: the front-end half of the MiniAgents widget sync protocol, and the message block.
// Python prepends this file to each widget's own module (stream.js, tree.js, chat.js), so the
// functions and classes below are in scope there. Protocol: see miniagents/notebook/live_widget.py.
//
// Model text is untrusted. Its markdown is rendered and sanitised in the kernel (rendering.py), while it
// streams and once complete, and sanitised once more here (allow-listed tags and attributes, safe link
// targets only) before it reaches the page; text not rendered yet goes into a text node, never parsed.

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

// How a cancelled message reads (rendering.STOPPED): a failed message with exactly this error shows as stopped.
const STOPPED = "stopped";

function shownStatus(message) {
  const status = message.status || "streaming";
  return status === "failed" && message.error === STOPPED ? STOPPED : status;
}

// The block of `message` in `blocks` (a Map by message id), made on first use.
function blockIn(blocks, message) {
  let block = blocks.get(message.id);
  if (block === undefined) {
    block = new MessageBlock();
    blocks.set(message.id, block);
  }
  return block;
}

// A message's text on one line, cut to PREVIEW_CHARS characters (message_forms.preview() in the kernel).
const PREVIEW_CHARS = 80;
const PREVIEW_SCAN = 1000;

function preview(text) {
  const line = Array.from(text.slice(0, PREVIEW_SCAN).split(/\s+/).filter(Boolean).join(" "));
  return line.length <= PREVIEW_CHARS ? line.join("") : `${line.slice(0, PREVIEW_CHARS - 1).join("")}…`;
}

// One message, element for element what rendering.message_block_html() writes for the static HTML:
// header (sender, role · model, hash key), body (the markdown rendered in the kernel, sanitised again here,
// then the newest text not rendered yet as plain text), a note when stopped, the error when failed.
// A message's `form` (message_forms.MessageForm) changes the content: its tool calls after the body, each
// collapsed; a tool result's body collapsed under a summary line; an error message as an error block. The
// <details> elements are made once, so a block the reader opened stays open as the message updates.
class MessageBlock {
  constructor() {
    this.el = element("div", "miniagents-message");
    this.header = element("div", "miniagents-message-header");
    this.sender = element("span", "miniagents-sender");
    this.details = element("span", "miniagents-details");
    this.hash = element("span", "miniagents-hash");
    this.header.append(this.sender, this.details, this.hash);
    this.body = element("div", "miniagents-message-body jp-RenderedHTMLCommon");
    this.markdown = document.createDocumentFragment(); // replaced by the rendered blocks
    this.tail = element("div", "miniagents-tail");
    this.tailNode = document.createTextNode("");
    this.tail.appendChild(this.tailNode);
    this.note = element("div", "miniagents-message-note", STOPPED);
    this.error = element("div", "miniagents-message-error");
    this.el.append(this.header, this.body);
    this.renderedHtml = null;
    this.renderedUpto = 0; // how much of the text (UTF-16 code units) the rendered markdown covers
    this.message = null; // the LiveDocument's copy of the message shown (its text grows in place)
    this.form = null;
    this.toolCalls = element("div", "miniagents-tool-calls");
    this.toolCallsKey = null;
    this.result = element("details", "miniagents-tool-result");
    this.resultTag = element("span", "miniagents-tool-tag");
    this.resultName = element("code", "miniagents-tool-summary");
    this.resultPreview = element("span", "miniagents-tool-preview");
    const resultSummary = element("summary");
    resultSummary.append(this.resultTag, this.resultName, this.resultPreview);
    this.result.append(resultSummary);
    this.errorBlock = element("div", "miniagents-error-block");
    this.errorClass = element("span", "miniagents-error-class");
    this.errorText = element("span", "miniagents-error-text");
    this.errorTrace = element("div", "miniagents-error-trace");
  }

  update(message) {
    const status = shownStatus(message);
    this.el.dataset.status = status;
    this.sender.textContent = message.sender || "MESSAGE";
    this.details.textContent = [message.role, message.model].filter(Boolean).join(" · ");
    this.details.hidden = !this.details.textContent;
    this.hash.textContent = message.hash_key ? `#${message.hash_key.slice(0, 8)}` : "";
    this.hash.title = message.hash_key ? `hash key ${message.hash_key}` : "";
    this.hash.hidden = !message.hash_key;
    const ending = status === STOPPED ? this.note : message.error ? this.error : null;
    this.error.textContent = message.error || "";
    this.message = message;
    this.form = message.form && typeof message.form === "object" ? message.form : null;
    const kind = this.form ? this.form.kind : "text";
    if (this.form) this.el.dataset.kind = kind;
    else delete this.el.dataset.kind;
    this.el.replaceChildren(...[this.header, ...this.content(kind, message), ending].filter(Boolean));
    this.showBody(message);
  }

  // The elements between the header and the ending, for a message of this `kind`.
  content(kind, message) {
    const form = this.form;
    if (kind === "tool-calls") {
      this.showToolCalls(Array.isArray(form.tool_calls) ? form.tool_calls : []);
      return [this.body, this.toolCalls];
    }
    if (kind === "tool-result") {
      if (form.is_error === true) this.result.dataset.error = "true";
      else delete this.result.dataset.error;
      this.resultTag.textContent = form.is_error === true ? "tool error" : "tool result";
      this.resultName.textContent = form.tool_name || "";
      this.resultPreview.textContent = preview(message.text || "");
      if (this.body.parentNode !== this.result) this.result.append(this.body);
      return [this.result];
    }
    if (kind === "error") {
      this.errorClass.textContent = form.error_class || "Error";
      this.errorText.textContent = message.text || "";
      const trace = Array.isArray(form.agent_trace) ? form.agent_trace.map(String) : [];
      this.errorTrace.textContent = trace.length ? `via ${trace.join(" > ")}` : "";
      this.errorBlock.replaceChildren(...[this.errorClass, this.errorText, trace.length ? this.errorTrace : null]
        .filter(Boolean));
      return [this.errorBlock];
    }
    return [this.body];
  }

  showToolCalls(calls) {
    const key = JSON.stringify(calls);
    if (key === this.toolCallsKey) return; // unchanged: keep the elements (and which of them are open)
    this.toolCallsKey = key;
    this.toolCalls.replaceChildren(...calls.map((call) => {
      const details = element("details", "miniagents-tool-call");
      const summary = element("summary");
      summary.append(element("span", "miniagents-tool-tag", "tool call"),
        element("code", "miniagents-tool-summary", call.summary));
      details.append(summary, element("pre", "miniagents-tool-detail", call.detail));
      return details;
    }));
  }

  showBody(message) {
    const html = typeof message.html === "string" ? message.html : null;
    if (html !== this.renderedHtml) {
      const rendered = element("div");
      if (html !== null) sanitizeInto(rendered, html);
      this.body.replaceChildren(...rendered.childNodes, this.tail);
      this.renderedHtml = html;
    }
    const text = message.text || "";
    if (html === null) this.renderedUpto = 0;
    else if ((message.status || "streaming") === "streaming") this.renderedUpto = message.html_upto || 0;
    else this.renderedUpto = text.length; // complete: its html renders all of it
    this.setTail(text.slice(this.renderedUpto));
  }

  setTail(text) {
    if (this.tailNode.data !== text) this.tailNode.data = text;
    this.tail.hidden = text === "";
  }

  appendText(chunk) {
    if (this.el.dataset.status !== "streaming") return; // complete already: the rendered markdown shows it all
    this.tailNode.appendData(chunk);
    this.tail.hidden = false;
    if (this.form && this.form.kind === "tool-result" && this.message) {
      this.resultPreview.textContent = preview(this.message.text || ""); // (the document's copy, text appended)
    }
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

  // Start following the model; returns the function that stops. `el` is the view's element: a view whose
  // element was taken out of its output (the kernel replaced the output's view by a new one, and ipywidgets
  // does not dispose the old view then) stops following by itself.
  start(el) {
    let attached = false;
    const retired = () => {
      if (el === undefined) return false;
      if (el.parentNode !== null) attached = true;
      return attached && el.parentNode === null;
    };
    const onCustom = (content) => (retired() ? stop() : this.receive(content));
    const onState = () => (retired() ? stop() : this.applyState(this.model.get("state")));
    const stop = () => {
      this.model.off("msg:custom", onCustom);
      this.model.off("change:state", onState);
    };
    this.model.on("msg:custom", onCustom);
    this.model.on("change:state", onState);
    this.applyState(this.model.get("state"));
    // `state` is only as new as the last quiet point: a view made since (e.g. when a tree's next run brings
    // its view back) asks for the document as it is now (with no kernel, nothing answers: state stays)
    this.requestSnapshot();
    return stop;
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
