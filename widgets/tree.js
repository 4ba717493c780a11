// tree.js: MessageTree, the live tree of the agent calls of a run, one collapsible node per call.
// DOM: .miniagents-tree > .miniagents-folded (root calls folded away), .miniagents-call..., .miniagents-tree-totals
//   .miniagents-call[data-agent=ALIAS][data-status=pending|running|waiting|finished|failed][data-failed-inside=N]
//   > details > summary (agent, status, .miniagents-call-failed-inside, duration · chunks · tokens · kwargs),
//     then, built when the call is first open: .miniagents-call-error, .miniagents-call-section (input / replies:
//     .miniagents-home > .miniagents-message where a message shows in full, .miniagents-reference elsewhere),
//     .miniagents-call-children (.miniagents-folded, then the nested .miniagents-call nodes)
// A message shows in full once, at its home (the `homes` map of the document); elsewhere a reference
// ("↳ forwarded from AGENT #hash") that opens the way to it, scrolls it into view and highlights it.
// The children of a call with many of them start collapsed, and a collapsed call builds nothing inside it
// until it is opened, so a run of thousands of calls renders fast and scrolls smoothly.
// (live.js and waterfall.js, prepended by Python, provide LiveDocument, MessageBlock and TimelineTabs: the
// "Tree" | "Timeline" tabs, the same calls drawn as a waterfall.)

const SHOWN_STATUS = { pending: "pending", running: "running", waiting: "waiting", finished: "finished", failed: "failed" };
const MANY_CHILDREN = 20; // a call with more children than this shows them collapsed

function formatDuration(seconds) {
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  return `${seconds.toFixed(3)} s`;
}

function plural(count, word) {
  return `${count.toLocaleString("en-US")} ${word}${count === 1 ? "" : "s"}`;
}

function describeFolded(folded) {
  const details = [];
  if (folded.failed) details.push(`${folded.failed.toLocaleString("en-US")} failed`);
  if (folded.input_tokens || folded.output_tokens) {
    details.push(`tokens: ${folded.input_tokens.toLocaleString("en-US")} in / ${folded.output_tokens.toLocaleString("en-US")} out`);
  }
  const calls = folded.calls === 1 ? "call" : "calls";
  return `… ${folded.calls.toLocaleString("en-US")} earlier ${calls} folded` + (details.length ? ` (${details.join(", ")})` : "");
}

class CallNode {
  constructor(id) {
    this.id = id;
    this.data = { inputs: [], replies: [], children: [] };
    this.el = element("div", "miniagents-call");
    this.el.dataset.callId = id;
    this.details = element("details");
    this.details.open = true;
    this.userToggled = false;
    const summary = element("summary");
    const title = element("span", "miniagents-call-title");
    this.agent = element("span", "miniagents-call-agent");
    this.status = element("span", "miniagents-call-status");
    this.failedInside = element("span", "miniagents-call-failed-inside");
    this.failedInside.hidden = true;
    this.meta = element("span", "miniagents-call-meta");
    title.append(this.agent, this.status, this.failedInside, this.meta);
    summary.appendChild(title);
    summary.addEventListener("click", () => (this.userToggled = true));
    this.details.appendChild(summary);
    this.el.appendChild(this.details);
    this.built = false;
  }

  // the inside of the call: made on first need (the call is open), then kept current
  build() {
    if (this.built) return;
    this.built = true;
    this.error = element("div", "miniagents-call-error");
    this.error.hidden = true;
    this.inputs = this.section("input");
    this.replies = this.section("replies");
    this.children = element("div", "miniagents-call-children");
    this.folded = element("div", "miniagents-folded");
    this.folded.hidden = true;
    this.details.append(this.error, this.inputs.el, this.replies.el, this.children);
  }

  section(title) {
    const el = element("div", "miniagents-call-section");
    el.append(element("div", "miniagents-call-section-title", title));
    const list = element("div", "miniagents-call-section-messages");
    el.appendChild(list);
    el.hidden = true;
    return { el, list };
  }

  setDefaultOpen(open) {
    if (!this.userToggled && this.details.open !== open) this.details.open = open;
  }
}

function render({ model, el }) {
  const root = element("div", "miniagents-tree");
  const empty = element("div", "miniagents-tree-empty", "no agent calls yet");
  const rootFolded = element("div", "miniagents-folded");
  rootFolded.hidden = true;
  const totals = element("div", "miniagents-tree-totals");
  totals.hidden = true;
  root.append(empty, rootFolded, totals);
  const tabs = new TimelineTabs(root); // "Tree" | "Timeline": the same calls as a waterfall (waterfall.js)
  el.appendChild(tabs.el);
  const nodes = new Map(); // call id -> CallNode
  const homes = new Map(); // message id -> [call id, part]: where it shows in full
  const blocks = new Map(); // message id -> { block, el } at its home
  const showing = new Map(); // message id -> Set of the call ids listing it (inputs or replies)
  const dirtyCalls = new Set();
  let rootIds = [];
  let summary = null;
  let documentCopy = null;

  const node = (id) => {
    let found = nodes.get(id);
    if (found === undefined) {
      found = new CallNode(id);
      found.details.addEventListener("toggle", () => {
        if (found.details.open && !found.built) refreshCall(id);
      });
      nodes.set(id, found);
    }
    return found;
  };

  const homeBlock = (messageId) => {
    let home = blocks.get(messageId);
    if (home === undefined) {
      const block = new MessageBlock();
      block.update(documentCopy.message(messageId));
      const wrapper = element("div", "miniagents-home");
      wrapper.appendChild(block.el);
      home = { block, el: wrapper };
      blocks.set(messageId, home);
    }
    return home;
  };

  const reveal = (callId, messageId) => {
    // open every call on the way to the home of a message, then bring it into view
    const chain = [];
    for (let id = callId; id && nodes.has(id); id = nodes.get(id).data.parent) chain.unshift(id);
    for (const id of chain) {
      const call = nodes.get(id);
      call.userToggled = true;
      call.details.open = true;
      refreshCall(id);
    }
    const home = blocks.get(messageId);
    if (home === undefined) return;
    home.el.scrollIntoView({ block: "center" });
    home.el.classList.add("miniagents-highlight");
    setTimeout(() => home.el.classList.remove("miniagents-highlight"), 1500);
  };

  const referenceText = (messageId, home, part) => {
    const message = documentCopy.message(messageId);
    const homeCall = nodes.get(home[0]);
    const agent = homeCall ? homeCall.data.agent || "" : "";
    const where = part === "replies" && home[1] === "replies" ? "forwarded from" : home[1] === "replies" ? "reply of" : "input of";
    return `↳ ${where} ${agent}` + (message.hash_key ? ` #${message.hash_key.slice(0, 8)}` : "");
  };

  const reference = (messageId, home, part) => {
    const el = element("div", "miniagents-reference");
    el.dataset.homeCall = home[0];
    const link = element("a", null, referenceText(messageId, home, part));
    link.href = "#";
    link.title = "show where it is";
    link.addEventListener("click", (event) => {
      event.preventDefault();
      reveal(home[0], messageId);
    });
    el.appendChild(link);
    return { el, link };
  };

  const placeChildren = (container, elements) => {
    elements.forEach((child, index) => {
      if (container.children[index] !== child) container.insertBefore(child, container.children[index] || null);
    });
    while (container.children.length > elements.length) container.lastChild.remove();
  };

  const ownFigures = (id, data) => {
    let chunks = 0;
    for (const m of data.replies) {
      const home = homes.get(m);
      if (home === undefined || (home[0] === id && home[1] === "replies")) chunks += documentCopy.message(m).tokens || 0;
    }
    return chunks;
  };

  const refreshCall = (id) => {
    const call = node(id);
    const data = call.data;
    call.el.dataset.agent = data.agent || "";
    call.el.dataset.status = SHOWN_STATUS[data.status] || "running";
    call.el.dataset.failedInside = String(data.failed_inside || 0);
    call.agent.textContent = data.agent || "";
    call.status.textContent = data.status === "waiting" ? "waiting for input" : data.status || "";
    call.failedInside.hidden = !data.failed_inside;
    call.failedInside.textContent = data.failed_inside ? `${data.failed_inside} failed inside` : "";
    const meta = [];
    const duration =
      typeof data.duration === "number" ? data.duration
      : typeof data.ended === "number" && typeof data.started === "number" ? data.ended - data.started
      : null;
    if (duration !== null) meta.push(formatDuration(duration));
    const chunks = ownFigures(id, data);
    if (chunks) meta.push(plural(chunks, "chunk"));
    const usage = data.subtree_usage;
    if (Array.isArray(usage) && (usage[0] || usage[1])) meta.push(`tokens: ${usage[0].toLocaleString("en-US")} in / ${usage[1].toLocaleString("en-US")} out`);
    const kwargs = Object.entries(data.kwargs || {});
    if (kwargs.length) meta.push(kwargs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", "));
    call.meta.textContent = meta.join(" · ");
    if (!call.details.open) return; // built when opened
    call.build();
    call.error.hidden = !data.error;
    call.error.textContent = data.error || "";
    for (const part of ["inputs", "replies"]) {
      const section = call[part];
      section.el.hidden = data[part].length === 0;
      placeChildren(
        section.list,
        data[part].map((m) => {
          const home = homes.get(m);
          if (home === undefined || (home[0] === id && home[1] === part)) return homeBlock(m).el;
          const refs = call.references || (call.references = new Map());
          const key = `${part}:${m}:${home[0]}:${home[1]}`;
          if (!refs.has(key)) refs.set(key, reference(m, home, part));
          const found = refs.get(key);
          const text = referenceText(m, home, part); // (the hash key and the home's agent may come later)
          if (found.link.textContent !== text) found.link.textContent = text;
          return found.el;
        }),
      );
    }
    call.folded.hidden = !data.folded;
    if (data.folded) call.folded.textContent = describeFolded(data.folded);
    const many = data.children.length > MANY_CHILDREN;
    placeChildren(call.children, [
      call.folded,
      ...data.children.map((child) => {
        const childNode = node(child);
        if (!childNode.built && childNode.details.open !== !many) childNode.setDefaultOpen(!many);
        return childNode.el;
      }),
    ]);
  };

  const showRoots = () => {
    tabs.setRoots(rootIds);
    empty.hidden = rootIds.length > 0 || (summary && summary.folded);
    const many = rootIds.length > MANY_CHILDREN;
    placeChildren(root, [
      empty,
      rootFolded,
      ...rootIds.map((id) => {
        const rootNode = node(id);
        if (!rootNode.built) rootNode.setDefaultOpen(!many);
        return rootNode.el;
      }),
      totals,
    ]);
  };

  const showSummary = () => {
    if (!summary) return;
    rootFolded.hidden = !summary.folded;
    if (summary.folded) rootFolded.textContent = describeFolded(summary.folded);
    totals.hidden = !summary.calls;
    let line = `run totals: ${plural(summary.calls || 0, "call")}, ${(summary.failed || 0).toLocaleString("en-US")} failed`;
    for (const [model_, usage] of Object.entries(summary.usage || {})) {
      line += ` · ${model_ || "unknown model"}: ${usage.input_tokens.toLocaleString("en-US")} in / ${usage.output_tokens.toLocaleString("en-US")} out tokens`;
    }
    totals.textContent = line;
    empty.hidden = rootIds.length > 0 || Boolean(summary.folded);
  };

  const setHome = (messageId, home) => {
    const old = homes.get(messageId);
    if (home === null) homes.delete(messageId);
    else homes.set(messageId, home);
    for (const id of showing.get(messageId) || []) dirtyCalls.add(id);
    if (old) dirtyCalls.add(old[0]);
    if (home) dirtyCalls.add(home[0]);
  };

  const updateCall = (id, fields) => {
    const data = node(id).data;
    for (const part of ["inputs", "replies"]) {
      if (!Array.isArray(fields[part])) continue;
      for (const m of fields[part]) {
        let calls = showing.get(m);
        if (calls === undefined) showing.set(m, (calls = new Set()));
        calls.add(id);
      }
    }
    Object.assign(data, fields);
    tabs.updateCall(id, fields);
    dirtyCalls.add(id);
  };

  const forget = ({ calls, messages }) => {
    tabs.forgetCalls(calls || []);
    for (const id of calls || []) {
      const call = nodes.get(id);
      if (call) call.el.remove();
      nodes.delete(id);
      dirtyCalls.delete(id);
    }
    for (const m of messages || []) {
      blocks.delete(m);
      homes.delete(m);
      showing.delete(m);
      documentCopy.messages.delete(m);
    }
  };

  const flushCalls = () => {
    for (const id of dirtyCalls) if (nodes.has(id)) refreshCall(id);
    dirtyCalls.clear();
  };

  documentCopy = new LiveDocument(model, {
    onMessage: (message) => {
      const home = blocks.get(message.id);
      if (home !== undefined) home.block.update(message);
      for (const id of showing.get(message.id) || []) dirtyCalls.add(id);
    },
    onText: (message, chunk) => {
      const home = blocks.get(message.id);
      if (home !== undefined) home.block.appendText(chunk);
    },
    onEvent: (kind, id, value) => {
      if (kind === "call") updateCall(id, value);
      else if (kind === "roots") {
        rootIds = value;
        showRoots();
      } else if (kind === "homes") {
        for (const [messageId, home] of Object.entries(value || {})) setHome(messageId, home);
      } else if (kind === "summary") {
        summary = value;
        showSummary();
      } else if (kind === "forget") forget(value || {});
    },
    onState: (state) => {
      for (const [messageId, home] of Object.entries(state.homes || {})) setHome(messageId, home);
      for (const [id, fields] of Object.entries(state.calls || {})) updateCall(id, fields);
      if (state.summary) summary = state.summary;
      if (Array.isArray(state.roots)) rootIds = state.roots;
      showRoots();
      showSummary();
      flushCalls();
      tabs.setState(state);
    },
    onBatch: () => {
      flushCalls();
      tabs.batch();
    },
  });
  const stop = documentCopy.start(el);
  return () => {
    tabs.stop();
    stop();
  };
}

export default { render };
